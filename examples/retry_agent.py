"""A new agent in one file: retry a failed tool call N times, regenerating the whole turn.

THOR's own agent backs up a few hundred tokens before a failed call and resamples from there; this
one throws the whole turn away and asks again, up to ``retries`` times in a row. Registered in
:data:`thor.AGENTS`, it runs wherever an agent is named, with no edit elsewhere::

    thor eval --import examples/retry_agent.py --agent retry --benchmark gsm8k --limit 5
    thor train --import examples/retry_agent.py --set rollout.agent.name=retry ...
"""

from __future__ import annotations

from pydantic import Field

import thor
from thor.agents import Agent, AgentConfig, CallContext, EpisodeState
from thor.types import Turn, failed


class RetryConfig(AgentConfig):
    """How often a failed call is retried (consecutively)."""

    retries: int = Field(2, ge=0, description="Consecutive retries of a failed call")


class RetryAgent(Agent):
    """Runs each call on a fork; a failed one is thrown away and its turn regenerated whole."""

    name = "retry"
    config_class = RetryConfig
    config: RetryConfig

    def on_call(self, state: EpisodeState, turn: Turn, ctx: CallContext) -> None:
        branch, outcome = ctx.act_on_fork(state, turn)
        if failed(outcome.info.get("exec")) and state.retries < self.config.retries:
            kept = branch.episode.turns[-1]  # the turn with its failed result, for the record
            branch.close()
            state.retries += 1
            ctx.discard(state, kept, None)  # no prefix: the turn is generated again from scratch
            return
        ctx.adopt(state, branch, outcome)
        state.retries = 0


if "retry" not in thor.AGENTS:
    thor.AGENTS.register("retry", config=RetryConfig, factory=RetryAgent)
