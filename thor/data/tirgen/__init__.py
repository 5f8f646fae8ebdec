r"""TIRGen: actor-critic construction of tool-integrated training data (THOR-SPEC section 1).

The actor (any policy, prompted for plain chain of thought) writes a solution one step at a time;
a critic (registered in :data:`thor.registries.CRITICS`: :class:`LLMCritic` over any policy, the
model-free :class:`RuleCritic`, or :class:`GSM8KCritic` for GSM8K's annotations) sees only each
step and inserts python blocks that compute its codable parts, keeping the step's text verbatim;
every block runs for real in thor's sandbox and its real output goes into the text; the actor
continues from the rewritten step. Finished attempts pass a multi-stage filter (format, code
quality, answer, repetition; difficulty by the ``cot`` agent; balance by calls; one per problem)
and become rows that TRL's ``SFTTrainer`` takes as they are, with the spans of model-written text
and their provenance. :func:`run_tirgen` (``thor tirgen``) is resumable and idempotent.

Example:
    >>> from thor.data.tirgen import RuleCritic
    >>> RuleCritic().rewrite("So 2^{20} = 1048576.\n").blocks
    ['print(2**20)']
"""

from __future__ import annotations

from thor.data.tirgen.config import PRESETS, CodeQualityRule, TirgenConfig
from thor.data.tirgen.critic import (
    CRITIC_EXAMPLES,
    CRITIC_SYSTEM,
    Critic,
    CriticResult,
    CriticStatus,
    LLMCritic,
    check_rewrite,
    parse_rewrite,
    rewrite_steps,
    visible_text,
)
from thor.data.tirgen.critics import (
    GSM8KCriticConfig,
    LLMCriticConfig,
    RuleCriticConfig,
    make_critic,
)
from thor.data.tirgen.filters import (
    SAMPLE_STAGES,
    Verdict,
    balance_by_calls,
    check_answer,
    check_code_quality,
    check_difficulty,
    check_format,
    check_repetition,
    is_low_quality,
    judge_sample,
)
from thor.data.tirgen.funnel import Funnel, FunnelStage, build_funnel
from thor.data.tirgen.generate import AttemptResult, Execution, ProblemOutcome, TirGenerator
from thor.data.tirgen.gsm8k_critic import GSM8KCritic
from thor.data.tirgen.output import sft_row, token_loss_mask
from thor.data.tirgen.rule_critic import RuleCritic
from thor.data.tirgen.runner import build_critic, build_policy, cot_accuracy, finalize, run_tirgen
from thor.data.tirgen.store import TirgenStore
from thor.data.tirgen.text import Part, Piece, model_spans, snap_window, split_fenced

__all__ = [
    "CRITIC_EXAMPLES",
    "CRITIC_SYSTEM",
    "PRESETS",
    "SAMPLE_STAGES",
    "AttemptResult",
    "CodeQualityRule",
    "Critic",
    "CriticResult",
    "CriticStatus",
    "Execution",
    "Funnel",
    "FunnelStage",
    "GSM8KCritic",
    "GSM8KCriticConfig",
    "LLMCritic",
    "LLMCriticConfig",
    "Part",
    "Piece",
    "ProblemOutcome",
    "RuleCritic",
    "RuleCriticConfig",
    "TirGenerator",
    "TirgenConfig",
    "TirgenStore",
    "Verdict",
    "balance_by_calls",
    "build_critic",
    "build_funnel",
    "build_policy",
    "check_answer",
    "check_code_quality",
    "check_difficulty",
    "check_format",
    "check_repetition",
    "check_rewrite",
    "cot_accuracy",
    "finalize",
    "is_low_quality",
    "judge_sample",
    "make_critic",
    "model_spans",
    "parse_rewrite",
    "rewrite_steps",
    "run_tirgen",
    "sft_row",
    "snap_window",
    "split_fenced",
    "token_loss_mask",
    "visible_text",
]
