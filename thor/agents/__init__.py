"""Agents: policies working problems through the TIR loop, with THOR's self-correction and best-of-N.

Three agents are registered in :data:`thor.AGENTS`: ``cot`` (no tools), ``tir`` (python tool
calls) and ``thor`` (TIR with self-correction). An agent is a configured
:class:`~thor.agents.rollout.RolloutEngine`; any policy backend drives it.

Example:
    >>> import thor
    >>> agent = thor.AGENTS.make("thor", max_retries=2)
    >>> agent.config.agent, agent.config.max_retries
    ('thor', 2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from thor.agents.best_of_n import execution_pass_rate, majority_vote, select_best_of_n
from thor.agents.config import AgentKind, RolloutConfig
from thor.agents.rollout import RolloutEngine, RolloutStats, RolloutTask
from thor.registries import AGENTS
from thor.types import Episode, Problem

if TYPE_CHECKING:
    from thor.agents.backends.base import Policy

__all__ = [
    "Agent",
    "AgentKind",
    "RolloutConfig",
    "RolloutEngine",
    "RolloutStats",
    "RolloutTask",
    "execution_pass_rate",
    "majority_vote",
    "select_best_of_n",
]


class Agent:
    """A configured inference agent; :meth:`run` works problems with any policy.

    Args:
        config: the agent kind, sampling, budgets and batching.
    """

    def __init__(self, config: RolloutConfig) -> None:
        self.config = config

    def run(
        self,
        policy: Policy,
        problems: Iterable[Problem],
        *,
        samples: int = 1,
        seed: int = 0,
        on_episode: Callable[[Episode], None] | None = None,
    ) -> list[Episode]:
        """Run ``samples`` episodes of every problem; episodes come back in problem order."""
        tasks = [RolloutTask(problem=p, sample=s) for p in problems for s in range(samples)]
        with RolloutEngine(policy, self.config) as engine:
            return engine.run(tasks, seed=seed, on_episode=on_episode)


class CoTAgentConfig(RolloutConfig):
    agent: AgentKind = "cot"


class TIRAgentConfig(RolloutConfig):
    agent: AgentKind = "tir"


class ThorAgentConfig(RolloutConfig):
    agent: AgentKind = "thor"


AGENTS.register(
    "cot", config=CoTAgentConfig, factory=Agent, description="Chain of thought, no tools"
)
AGENTS.register(
    "tir", config=TIRAgentConfig, factory=Agent, description="Tool-integrated reasoning"
)
AGENTS.register(
    "thor", config=ThorAgentConfig, factory=Agent, description="TIR with THOR's self-correction"
)
