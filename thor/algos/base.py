"""What an RL algorithm is in thor: something that turns rollouts into train samples, plus a loss.

An :class:`Algorithm` draws problems, has the rollout engine generate episodes, scores them and
returns :class:`~thor.algos.batch.TrainSample` s with advantages (``collect``); the trainer then
updates the policy with the algorithm's :attr:`loss`. Variants override one method (e.g.
``advantages``); new algorithms register in :data:`thor.ALGORITHMS` (see ``examples/``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from thor.algos.batch import TrainSample
from thor.algos.losses import GRPOLoss
from thor.algos.problems import ProblemStream
from thor.types import Episode

if TYPE_CHECKING:
    from thor.agents.backends.base import Policy
    from thor.agents.rollout import RolloutEngine

__all__ = ["Algorithm", "CollectContext", "Collected"]


@dataclass
class CollectContext:
    """What an algorithm may use to collect one training step's samples."""

    engine: RolloutEngine
    policy: Policy
    problems: ProblemStream
    step: int
    seed: int


@dataclass
class Collected:
    """One step's samples, the episodes they came from, and metrics to log."""

    samples: list[TrainSample]
    episodes: list[Episode]
    metrics: dict[str, float] = field(default_factory=dict)


class Algorithm(ABC):
    """An RL algorithm: sample collection (with advantages) and the loss that trains on it."""

    name: str = "algorithm"
    loss: GRPOLoss
    needs_failure_snapshots: bool = False
    """Whether rollouts must keep a fork of the env before each failed call (step-level RL)."""

    @abstractmethod
    def collect(self, ctx: CollectContext) -> Collected:
        """Draw problems, run rollouts and return train samples for one step."""

    def config_dict(self) -> dict[str, Any]:
        cfg = getattr(self, "config", None)
        return cfg.model_dump(mode="json") if cfg is not None else {}
