"""The demo's presets and its config: which problems, how many, and the CPU-sized settings.

- ``quick``: minutes on 2 CPU cores; every stage acts (see the preset's comment);
- ``long``: every synthetic family, 300 held-out problems, about two hours;
- ``gsm8k``: the real benchmark: TIRGen from GSM8K's own solutions, RL on GSM8K train problems,
  every stage evaluated on the same seeded 500 problems of GSM8K test; hours, resumable.

Example:
    >>> DemoConfig(preset="gsm8k").get("eval_problems")
    500
    >>> DemoConfig(preset="gsm8k", overrides={"eval_problems": 8}).get("eval_problems")
    8
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from thor.config import ThorConfig
from thor.data.synthetic.schema import FAMILIES

__all__ = ["DEMO_TIR_SYSTEM", "DEVIATIONS", "PRESETS", "DemoConfig", "deviations"]

PRESETS: dict[str, dict[str, Any]] = {
    # Every stage acts. The held-out and train problems come from all six families, as in the long
    # preset, whose measured run (docs/results/demo-long) is the evidence: there 13% of the
    # cold-start model's calls failed (unclosed brackets, undefined names, a number called like a
    # function: library code for binomials, sympy equations, modular inverses), step-level RL
    # found 18 failed code steps in 6 RL steps and self-correction retried 0.41 times per
    # episode; with arithmetic alone (this preset before) no call ever failed, so step RL and
    # self-correction had nothing to act on. Difficulties 1-3 keep the worked solutions short.
    # Measured once (docs/results/demo-quick-redesign, loaded machine): step RL trained 4 step
    # groups, but then no call failed for self-correction and accuracy was 0% throughout: the
    # family mix needs another iteration.
    "quick": {
        "data": "synthetic",
        # arithmetic only: the measured table (0 -> 25 -> 44%). Every family (as in the long
        # preset) made step RL act but scored 0% at every stage in its one measured run
        # (docs/results/demo-quick-redesign); --set families=[...] reproduces it.
        "families": ["arithmetic"],
        "eval_problems": 16,
        "tirgen_problems": 48,
        "difficulties": [1, 2, 3],
        "rl_steps": 2,
        "group_size": 4,
        "prompts_per_step": 2,
        "max_draws": 1,
        "step_group_size": 4,
        # measured: 1 epoch at lr 2e-4 left the model repeating digits (0% held-out); 2 at 1e-4
        # taught it the tool format (21%)
        "sft_epochs": 2.0,
        "sft_lr": 1e-4,
        "sft_rows": None,
        "max_response_tokens": 160,
        "base_agents": ["cot"],
    },
    # >= 300 held-out problems so the intervals mean something, and every problem family: modular
    # arithmetic, binomials, sympy equations... are where a small model's code fails (in the
    # measured run: unclosed brackets, undefined names, a number called like a function), which is
    # what step-level RL and self-correction act on.
    # 1 h 53 min measured on 2 CPU cores (2026-11-27); five evaluations of 300 problems are 74 min.
    "long": {
        "data": "synthetic",
        "families": list(FAMILIES),
        "eval_problems": 300,
        "difficulties": [1, 2, 3, 4],
        "tirgen_problems": 120,
        "rl_steps": 6,
        "group_size": 8,
        "prompts_per_step": 2,
        "max_draws": 2,
        "step_group_size": 4,
        "sft_epochs": 2.0,
        "sft_lr": 1e-4,
        "sft_rows": None,
        "max_response_tokens": 192,
        "base_agents": ["cot"],
    },
    # GSM8K: TIRGen over the whole train split (the rule path needs no model: minutes), SFT on
    # 3,000 of its samples, RL on train problems, 500 seeded test problems per evaluation; about
    # 10 hours on 2 CPU cores, stage by stage in docs/results/gsm8k/README.md.
    "gsm8k": {
        "data": "gsm8k",
        "families": None,
        "difficulties": None,
        "eval_problems": 500,
        "tirgen_problems": 7473,
        "sft_rows": 3000,
        "sft_epochs": 1.0,
        "sft_lr": 5e-5,
        "rl_steps": 20,
        "group_size": 8,
        "prompts_per_step": 2,
        "max_draws": 2,
        "step_group_size": 4,
        "max_response_tokens": 320,
        "base_agents": ["cot", "tir"],
    },
}

# A short tool-use instruction: every token of the prompt is paid for in every SFT row, rollout and
# evaluation, and thor's TIR prompt (THOR-SPEC) is 75 tokens of SmolLM2's tokenizer.
DEMO_TIR_SYSTEM = (
    "Solve the problem. To compute, write a ```python block that prints the result; "
    "then give the final answer in \\boxed{}."
)

_COMMON = [
    "model: SmolLM2-135M-Instruct (the paper: Qwen2.5-Math-1.5B/7B, Qwen3-8B)",
    "prompt: a 30-token tool-use instruction for the tir/thor agents and the SFT data (thor's TIR"
    " prompt is 75 tokens), since prompt tokens dominate CPU time here",
]

DEVIATIONS = [
    _COMMON[0],
    "problems: seeded synthetic problems (the paper: MATH, AIME...), so a 135M model can show the"
    " effect: all six families (arithmetic, modular, combinatorics, number theory, equations,"
    " series), difficulties 1-3 in the quick preset and 1-4 in the long one",
    "TIRGen actor: the synthetic problems' reference chain of thought in the model's tokens"
    " (thor.data.synthetic.actor.ReferenceActor), not the model itself: SmolLM2-135M as its own actor"
    " got 0 of 7 problems through TIRGen (no \\boxed answer or no codable step; 2026-11-27)",
    "TIRGen critic: rule-based (the paper: Qwen3-32B); no difficulty filter (base CoT solves ~none);"
    " no code-quality filter (arithmetic needs one-line prints, which the paper's rule rejects)",
    "SFT: 2 epochs at lr 1e-4 on a few dozen (quick) to about a hundred (long) samples, batch 8"
    " (the paper: 1 epoch, lr 2e-6, batch 256)",
    "RL: 2-6 steps of 2 prompts, group size 4-8, lr 1e-5, 160-192-token responses (the paper: G=16,"
    " lr 1e-6, 4,096 tokens, hundreds of steps)",
    _COMMON[1],
    "evaluation: one sample per problem (Avg@1) at T=0.6 on held-out synthetic problems (the paper: Avg@4)",
]
"""What the synthetic presets (quick, long) change from the paper."""

GSM8K_DEVIATIONS = [
    _COMMON[0],
    "TIRGen actor: GSM8K's own worked solutions (thor.data.gsm8k.reference_actor), a whole solution"
    " per step; critic: the GSM8K rule critic (each <<expression=value>> becomes a cell that runs in"
    " the sandbox; the paper: Qwen3-32B); no difficulty filter (base CoT solves ~none of GSM8K);"
    " code quality by the 'computes' rule (the paper's rule calls all arithmetic low quality)",
    "SFT: 1 epoch at lr 5e-5 on 3,000 TIRGen samples, batch 8 (the paper: 1 epoch, lr 2e-6, batch"
    " 256, all samples)",
    "RL: 20 steps of 2 GSM8K train problems, group size 8, lr 1e-5, 320-token responses (the paper:"
    " G=16, lr 1e-6, 4,096 tokens, hundreds of steps)",
    _COMMON[1],
    "evaluation: one sample per problem (Avg@1) at T=0.6 on 500 GSM8K test problems chosen by seed"
    " (the paper: Avg@4); accuracy by thor's boxed rule, and by the last number in the response"
    " (lm-eval's flexible extraction) beside it",
]


def deviations(preset: str) -> list[str]:
    """The deviations from the paper that a preset makes."""
    return GSM8K_DEVIATIONS if PRESETS[preset]["data"] == "gsm8k" else DEVIATIONS


class DemoConfig(ThorConfig):
    """The demo's settings; ``None`` fields take the preset's value, then ``overrides``'s.

    ``overrides`` sets any preset key (``thor demo --set eval_problems=8``): how a smoke test
    shrinks the gsm8k preset to minutes.
    """

    preset: Literal["quick", "long", "gsm8k"] = "quick"
    out_dir: Path = Path("runs/demo")
    model: str = "embedded"
    seed: int = 0
    families: list[str] | None = None
    difficulties: list[int] | None = None
    eval_problems: int | None = Field(None, ge=1)
    tirgen_problems: int | None = Field(None, ge=1)
    rl_steps: int | None = Field(None, ge=1)
    group_size: int | None = Field(None, ge=2)
    prompts_per_step: int | None = Field(None, ge=1)
    max_draws: int | None = Field(None, ge=1)
    step_group_size: int | None = Field(None, ge=2)
    sft_epochs: float | None = Field(None, gt=0)
    sft_lr: float | None = Field(None, gt=0)
    rl_lr: float = Field(1e-5, gt=0)
    max_response_tokens: int | None = Field(None, ge=32)
    system_prompt: str = DEMO_TIR_SYSTEM
    temperature: float = Field(0.6, ge=0.0)
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="Preset keys to change (sft_rows, base_agents...)"
    )
    progress: bool = True

    @model_validator(mode="after")
    def _known_overrides(self) -> DemoConfig:
        unknown = sorted(set(self.overrides) - set(PRESETS[self.preset]))
        if unknown:
            raise ValueError(
                f"unknown preset keys {unknown}; known: {', '.join(sorted(PRESETS[self.preset]))}"
            )
        return self

    def get(self, name: str) -> Any:
        value = getattr(self, name, None)
        if value is not None:
            return value
        if name in self.overrides:
            return self.overrides[name]
        return PRESETS[self.preset][name]
