"""Configuration of an inference agent and its rollout engine."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from thor.config import ThorConfig
from thor.text.prompts import PromptStyle

__all__ = ["AgentKind", "RolloutConfig"]

AgentKind = Literal["cot", "tir", "thor"]


class RolloutConfig(ThorConfig):
    """How episodes are generated: the agent, its sampling, budgets and the engine's batching.

    ``agent``: ``cot`` (no tools), ``tir`` (python tool calls), ``thor`` (TIR with THOR's
    self-correction: a failed call is discarded and the turn regenerated, THOR-SPEC section 3).
    """

    agent: AgentKind = "tir"
    temperature: float = Field(0.6, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    max_response_tokens: int = Field(
        4096, ge=1, description="Model text + tool outputs, per episode"
    )
    max_turn_tokens: int | None = Field(
        None, ge=1, description="Cap on one turn (default: what the budget leaves)"
    )
    max_rounds: int = Field(5, ge=0, description="Kept tool calls per episode")
    prompt_style: PromptStyle | None = Field(
        None, description="Default: 'cot' for the cot agent, else 'tir'"
    )
    system_prompt: str | None = None
    reward: str | dict[str, float] = "correct"
    cell_timeout_s: float | None = Field(None, gt=0)
    sandbox: str = "local"
    sandbox_config: dict[str, Any] = Field(default_factory=dict)
    # THOR self-correction
    backtrack_tokens: int = Field(
        500, ge=0, description="How far back into the reasoning a retry starts"
    )
    max_retries: int = Field(4, ge=0, description="Consecutive retries after failed calls")
    retry_temperature: float = Field(0.6, ge=0.0)
    max_interactions: int = Field(
        10, ge=1, description="Tool-call attempts per episode, retries included"
    )
    keep_failure_snapshots: bool = Field(
        False,
        description="Keep a fork of the env before each failed call (step-level RL restores it)",
    )
    # engine
    batch_size: int = Field(16, ge=1, description="Episodes in flight")
    cohorts: int = Field(
        2, ge=1, description="Groups that alternate: one generates while another's code runs"
    )
    exec_workers: int = Field(4, ge=1, description="Threads that drive sandbox calls and rewards")

    @property
    def style(self) -> PromptStyle:
        if self.prompt_style is not None:
            return self.prompt_style
        return "cot" if self.agent == "cot" else "tir"
