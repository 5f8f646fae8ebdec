"""Agents: policies working problems through the TIR loop, with THOR's self-correction and best-of-N.

An agent is a registered class (:data:`thor.AGENTS`) with a typed config: ``cot`` (no tools),
``tir`` (tool calls) and ``thor`` (TIR with self-correction). The
:class:`~thor.agents.rollout.RolloutEngine` runs any agent over any env that offers
:class:`~thor.agents.env.AgentEnv`, with any policy backend; :func:`run_agent` is the short way.

Example:
    >>> import thor
    >>> agent = thor.AGENTS.make("thor", max_retries=2)
    >>> agent.name, agent.config.max_retries
    ('thor', 2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from thor.agents.base import Agent, AgentConfig, CallContext, EpisodeState, StepOutcome
from thor.agents.best_of_n import execution_pass_rate, majority_vote, select_best_of_n
from thor.agents.builtin import CoTAgent, ThorAgent, ThorAgentConfig, TIRAgent
from thor.agents.config import RolloutConfig
from thor.agents.env import AgentEnv, EnvFactory, env_factory
from thor.agents.rollout import Rollout, RolloutEngine, RolloutStats, RolloutTask
from thor.registries import AGENTS
from thor.types import Episode, Problem

if TYPE_CHECKING:
    from thor.agents.backends.base import Policy

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentEnv",
    "CallContext",
    "CoTAgent",
    "EnvFactory",
    "EpisodeState",
    "Rollout",
    "RolloutConfig",
    "RolloutEngine",
    "RolloutStats",
    "RolloutTask",
    "StepOutcome",
    "TIRAgent",
    "ThorAgent",
    "ThorAgentConfig",
    "env_factory",
    "execution_pass_rate",
    "majority_vote",
    "run_agent",
    "select_best_of_n",
]


def run_agent(
    policy: Policy,
    problems: Iterable[Problem],
    config: RolloutConfig | None = None,
    *,
    samples: int = 1,
    seed: int = 0,
    on_episode: Callable[[Episode], None] | None = None,
) -> list[Episode]:
    """Run ``samples`` episodes of every problem; episodes come back in problem order."""
    tasks = [RolloutTask(problem=p, sample=s) for p in problems for s in range(samples)]
    with RolloutEngine(policy, config) as engine:
        return engine.run(tasks, seed=seed, on_episode=on_episode)


for _cls in (CoTAgent, TIRAgent, ThorAgent):
    AGENTS.register(_cls.name, config=_cls.config_class, factory=_cls)
