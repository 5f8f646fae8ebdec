"""What an agent is: how it samples a turn and what it does when a turn calls a tool.

The rollout engine owns batching, the policy and the envs; an :class:`Agent` owns the decisions
that make one strategy differ from another. An agent is a small registered class
(:data:`thor.AGENTS`) with a typed config; ``cot``, ``tir`` and ``thor`` are three of them and a
user's fourth is one file:

- :meth:`Agent.temperature`: the sampling temperature of the next turn of an episode;
- :meth:`Agent.on_call`: what happens when a generated turn ends with a tool call (run it; or run
  it on a fork and back up on failure, as THOR's self-correction does);
- :attr:`Agent.uses_tools`: whether the policy is given the tool's stop rule at all.

An agent's hooks see an :class:`EpisodeState` and a :class:`CallContext`: the engine's services
(act on the env, keep a failure snapshot for step-level RL, cut a turn back before its call).

Example:
    >>> import thor
    >>> agent = thor.AGENTS.make("thor", max_retries=2)
    >>> agent.name, agent.config.max_retries, agent.uses_tools
    ('thor', 2, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import Field

from thor.agents.backtrack import TurnPrefix
from thor.config import ThorConfig
from thor.types import Episode, Problem, Turn

if TYPE_CHECKING:
    from thor.agents.env import AgentEnv

__all__ = ["Agent", "AgentConfig", "CallContext", "EpisodeState", "StepOutcome"]


class AgentConfig(ThorConfig):
    """Sampling shared by every agent (THOR's evaluation protocol: T = 0.6, top_p = 1.0)."""

    temperature: float = Field(0.6, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    max_turn_tokens: int | None = Field(
        None, ge=1, description="Cap on one turn (default: what the env's budget leaves)"
    )


@dataclass
class EpisodeState:
    """One episode in flight, as the engine and its agent see it.

    Attributes:
        episode_id: ``problem id#sample``.
        problem: the problem.
        sample: which sample of the problem (for groups and Avg@k).
        env: the episode's env (any :class:`~thor.agents.env.AgentEnv`).
        context_ids: prompt + every kept turn and observation, as token ids.
        prefix: a kept partial turn the next generation continues (set by a backtrack).
        retries: consecutive failed calls retried so far (an agent's counter).
        attempts: tool-call attempts so far, retries included.
        done: the episode has ended.
        pending_obs: the observation of the last kept call, not yet tokenised.
        scratch: free room for a user's agent (counters, notes); the engine never reads it.
    """

    episode_id: str
    problem: Problem
    sample: int
    env: AgentEnv
    context_ids: list[int]
    prefix: TurnPrefix | None = None
    retries: int = 0
    attempts: int = 0
    done: bool = False
    pending_obs: str = ""
    scratch: dict[str, Any] = field(default_factory=dict)

    @property
    def episode(self) -> Episode:
        return self.env.episode


@dataclass(frozen=True)
class StepOutcome:
    """What acting one turn gave: the observation, whether the episode ended, the call's info."""

    observation: str
    terminated: bool
    truncated: bool
    info: dict[str, Any]

    @property
    def ended(self) -> bool:
        return self.terminated or self.truncated


class CallContext(Protocol):
    """The engine's services to an agent (thread-safe; called from worker threads)."""

    def act(self, state: EpisodeState, turn: Turn) -> StepOutcome:
        """Act ``turn`` on ``state.env`` and keep the result (a failure snapshot if asked for)."""
        ...

    def act_on_fork(self, state: EpisodeState, turn: Turn) -> tuple[AgentEnv, StepOutcome]:
        """Act ``turn`` on a fork of ``state.env``; the caller adopts or discards the fork."""
        ...

    def adopt(self, state: EpisodeState, branch: AgentEnv, outcome: StepOutcome) -> None:
        """Make ``branch`` the episode's env and keep ``outcome`` (the old env is closed)."""
        ...

    def keep_snapshot(self, state: EpisodeState, turn_index: int) -> None:
        """Keep a fork of ``state.env`` as it is now, as the state before turn ``turn_index``'s call."""
        ...

    def discard(self, state: EpisodeState, turn: Turn, prefix: TurnPrefix | None) -> None:
        """Throw ``turn`` away (recorded in ``Episode.discarded``); regenerate from ``prefix``."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """The policy's ``decode`` (token ids -> text), for cutting turns in token space."""
        ...


class Agent:
    """An agent strategy. Subclasses set ``name`` and override the hooks they change.

    Args:
        config: the agent's typed config (sampling and strategy settings).
    """

    name: ClassVar[str] = "agent"
    config_class: ClassVar[type[AgentConfig]] = AgentConfig
    uses_tools: ClassVar[bool] = True
    """False: the policy gets no tool stop rule and the env is asked for no tool rounds."""
    default_env: ClassVar[str] = "thor/MathTIR-v0"
    """The env used when a rollout names none."""

    def __init__(self, config: AgentConfig | None = None) -> None:
        self.config = config if config is not None else self.config_class()

    def temperature(self, state: EpisodeState) -> float:
        """The sampling temperature of the next turn of ``state``."""
        return self.config.temperature

    def on_call(self, state: EpisodeState, turn: Turn, ctx: CallContext) -> None:
        """``turn`` ends with a tool call the env will run: run it (the default) or not.

        Implementations either keep a step (``ctx.act`` / ``ctx.adopt``), which sets
        ``state.done`` and ``state.pending_obs``, or discard the turn (``ctx.discard``) so that the
        engine regenerates it.
        """
        ctx.act(state, turn)

    def on_answer(self, state: EpisodeState, turn: Turn, ctx: CallContext) -> None:
        """``turn`` calls no tool (a final answer, or the budget ran out): keep it."""
        ctx.act(state, turn)

    def metadata(self) -> dict[str, Any]:
        """What each episode records about the agent (its name by default)."""
        return {"agent": self.name}
