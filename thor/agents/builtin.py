"""thor's three agents: ``cot`` (no tools), ``tir`` (tool calls) and ``thor`` (TIR with THOR's
self-correction, THOR-SPEC section 3). Each is a registered :class:`~thor.agents.base.Agent`.

Example:
    >>> ThorAgent(ThorAgentConfig(max_retries=1)).config.backtrack_tokens
    500
"""

from __future__ import annotations

from pydantic import Field

from thor.agents.backtrack import cut_before_call
from thor.agents.base import Agent, AgentConfig, CallContext, EpisodeState
from thor.types import Turn, failed

__all__ = ["CoTAgent", "TIRAgent", "ThorAgent", "ThorAgentConfig"]


class CoTAgent(Agent):
    """Chain of thought: the policy gets no tool stop rule; every turn is the answer."""

    name = "cot"
    uses_tools = False
    default_env = "thor/MathCoT-v0"


class TIRAgent(Agent):
    """Tool-integrated reasoning: a turn that ends with a call runs it, the output goes back."""

    name = "tir"


class ThorAgentConfig(AgentConfig):
    """THOR's self-correction (THOR-SPEC section 3: release defaults)."""

    backtrack_tokens: int = Field(
        500, ge=0, description="How far back into the reasoning a retry starts"
    )
    max_retries: int = Field(4, ge=0, description="Consecutive retries after failed calls")
    retry_temperature: float = Field(0.6, ge=0.0)
    max_interactions: int = Field(
        10, ge=1, description="Tool-call attempts per episode, retries included"
    )


class ThorAgent(Agent):
    """TIR with self-correction: a failed call is discarded and the turn regenerated from a cut.

    Each call runs on a fork of the episode's env. When it fails (and retries are left), the fork
    is thrown away, the turn is cut ``backtrack_tokens`` before its code fence and the policy
    continues from there at ``retry_temperature``. A success, or a failure kept after the last
    retry, resets the counter.
    """

    name = "thor"
    config_class = ThorAgentConfig
    config: ThorAgentConfig

    def temperature(self, state: EpisodeState) -> float:
        if state.prefix is not None:
            return self.config.retry_temperature
        return self.config.temperature

    def on_call(self, state: EpisodeState, turn: Turn, ctx: CallContext) -> None:
        c = self.config
        state.attempts += 1
        turn_index = len(state.episode.turns)
        branch, outcome = ctx.act_on_fork(state, turn)
        if not failed(outcome.info.get("exec")):
            ctx.adopt(state, branch, outcome)
            state.retries = 0
            return
        ctx.keep_snapshot(state, turn_index)  # state.env is still the state before the call
        retry = (
            not outcome.ended
            and state.retries < c.max_retries
            and state.attempts < c.max_interactions
        )
        if not retry:
            ctx.adopt(state, branch, outcome)
            state.retries = 0  # a failure kept after the last retry resets the counter
            return
        kept = branch.episode.turns[-1]
        branch.close()
        state.retries += 1
        ctx.discard(state, kept, cut_before_call(kept, c.backtrack_tokens, ctx.decode))
