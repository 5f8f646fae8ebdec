"""Configuration of a TIRGen run, with the paper's settings and a CPU preset.

Fields left ``None`` take the preset's value, then the paper's (:data:`PRESETS`).

Example:
    >>> cfg = TirgenConfig(problems="synthetic_train", out="runs/tirgen", preset="cpu").resolved()
    >>> cfg.step_tokens, cfg.attempts
    (128, 2)
    >>> TirgenConfig(out="x").resolved().step_tokens  # the paper's
    512
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from thor.config import ThorConfig
from thor.registries import SandboxSpec

__all__ = ["PRESETS", "CodeQualityRule", "TirgenConfig"]

CodeQualityRule = Literal["paper", "release", "either", "computes"]
"""``paper``: a block is good when it uses a library or control flow. ``release``: when it has more
than 5 non-comment lines (the authors' scripts). ``either``: when one of the two holds.
``computes``: when it computes something (an operator, a call other than ``print``, a
comprehension or control flow), not only prints or copies values: for word problems such as
GSM8K, whose every calculation is plain arithmetic that the ``paper`` rule calls low quality."""

PRESETS: dict[str, dict[str, Any]] = {
    # THOR-SPEC section 1, non-reasoning models: 512-token steps, 8 attempts, 4,096-token responses.
    "paper": {
        "step_tokens": 512,
        "attempts": 8,
        "max_response_tokens": 4096,
        "cell_timeout_s": 30.0,
        "cot_samples": 4,
        "cot_max_tokens": 4096,
    },
    # Minutes on 2 CPU cores with the embedded 135M model: short steps, 2 attempts.
    "cpu": {
        "step_tokens": 128,
        "attempts": 2,
        "max_response_tokens": 768,
        "cell_timeout_s": 10.0,
        "cot_samples": 1,
        "cot_max_tokens": 512,
    },
    # GSM8K's worked solutions as the actor's text (thor.data.gsm8k): a whole solution is one
    # step (<= 512 tokens), every step goes to the critic, one attempt (the text is fixed).
    "gsm8k": {
        "step_tokens": 512,
        "min_critic_tokens": 0,
        "attempts": 1,
        "max_response_tokens": 1024,
        "cell_timeout_s": 10.0,
        "cot_samples": 1,
        "cot_max_tokens": 512,
    },
}

_RESUMABLE = ("out", "limit", "progress", "concurrency", "exec_workers")
"""Fields that may change between a run and its resumption (the rest must match)."""


class TirgenConfig(ThorConfig):
    """What TIRGen reads, which models it uses, and the method's settings (THOR-SPEC section 1)."""

    problems: str = Field("math_train", description="A registered dataset name or a JSONL path")
    limit: int | None = Field(
        None, ge=1, description="First N problems (a larger N on resume extends the run)"
    )
    shuffle_seed: int | None = Field(None, description="Shuffle the problems before --limit")
    out: Path = Field(description="Output directory (resumed when it holds part of this run)")
    actor: str = Field(
        "embedded", description="Actor model: 'embedded', a directory or a GGUF file"
    )
    critic: str = Field(
        "rule",
        description="A registered critic (thor.registries.CRITICS: rule, llm, gsm8k), or a model "
        "name like --actor (the llm critic with that model)",
    )
    critic_options: dict[str, Any] = Field(
        default_factory=dict, description="The critic's config (validated by its registered class)"
    )
    backend: str = Field("hf", description="Policy backend of the models (hf, vllm, openai)")
    backend_options: dict[str, Any] = Field(default_factory=dict)
    preset: Literal["paper", "cpu", "gsm8k"] | None = None
    # actor
    step_tokens: int | None = Field(None, ge=8, description="Tokens per actor step (L_step)")
    min_critic_tokens: int | None = Field(
        None,
        ge=0,
        description="Shorter steps are kept as written, not sent to the critic (None: step_tokens / 2)",
    )
    attempts: int | None = Field(None, ge=1, description="Tries per problem")
    max_response_tokens: int | None = Field(
        None, ge=16, description="Actor tokens per attempt; an actor that never stops is abandoned"
    )
    temperature: float = Field(0.6, ge=0.0, description="Actor sampling temperature")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    system_prompt: str | None = Field(
        None, description="Actor system prompt (default: THOR's CoT prompt)"
    )
    # execution
    max_exec_per_step: int = Field(
        5, ge=1, description="Code blocks run per step (more are dropped)"
    )
    cell_timeout_s: float | None = Field(None, gt=0, description="Wall-clock limit of one block")
    sandbox: SandboxSpec = Field(
        default_factory=lambda: SandboxSpec.model_validate("local"),
        description="Where the critic's code runs: a registered sandbox with its config",
    )
    # filters
    difficulty: bool = Field(True, description="Drop problems that the cot agent already solves")
    cot_samples: int | None = Field(
        None, ge=1, description="CoT samples per problem for difficulty"
    )
    cot_max_tokens: int | None = Field(None, ge=16)
    cot_batch_size: int = Field(
        64, ge=1, description="Episodes in flight in the CoT evaluation (one generate call)"
    )
    cot_solved_at: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="A problem is solved when this share of CoT samples is right",
    )
    code_quality_rule: CodeQualityRule = "paper"
    low_quality_fraction: float = Field(
        0.4, ge=0.0, le=1.0, description="Reject when low-quality blocks > ceil(this * blocks)"
    )
    repetition_ngram: int = Field(20, ge=1)
    repetition_max: int = Field(20, ge=1)
    max_one_call_fraction: float = Field(
        0.5, gt=0.0, le=1.0, description="Balance: at most this share of the output has one call"
    )
    # output
    sft_system_prompt: str | None = Field(
        "tir",
        description="System message of the SFT prompt: 'tir' or 'cot' (thor's prompts), a text, or None",
    )
    # engine
    concurrency: int = Field(16, ge=1, description="Problems in flight (the actor's batch)")
    exec_workers: int = Field(4, ge=1, description="Threads running code and verification")
    seed: int = 0
    progress: bool = True

    @model_validator(mode="after")
    def _check_critic(self) -> TirgenConfig:
        from thor.registries import CRITICS

        name, options = self.critic_spec()
        CRITICS.config(name, **options)  # an unknown option fails now, naming the field
        return self

    def critic_spec(self) -> tuple[str, dict[str, Any]]:
        """The registered critic and its options; a model name means the ``llm`` critic with it."""
        from thor.registries import CRITICS

        if self.critic in CRITICS:
            return self.critic, dict(self.critic_options)
        legacy: dict[str, Any] = {"model": self.critic, "backend": self.backend}  # actor's backend
        if self.backend_options:
            legacy["backend_options"] = self.backend_options
        return "llm", {**legacy, **self.critic_options}

    def resolved(self) -> TirgenConfig:
        """A copy with every ``None`` preset field filled (preset, then the paper's values)."""
        preset = PRESETS.get(self.preset or "paper", PRESETS["paper"])
        fill = {k: v for k, v in preset.items() if getattr(self, k) is None}
        for k, v in PRESETS["paper"].items():
            if getattr(self, k) is None and k not in fill:
                fill[k] = v
        return self.model_copy(update=fill)

    def manifest(self) -> dict[str, Any]:
        """The settings a resumed run must share (output path, limit and throughput excluded)."""
        data = self.resolved().model_dump(mode="json")
        if not data["critic_options"]:  # runs written before critics had options still resume
            del data["critic_options"]
        return {k: v for k, v in data.items() if k not in _RESUMABLE}
