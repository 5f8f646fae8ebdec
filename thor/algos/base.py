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

import torch

from thor.algos.batch import KINDS, Batch, TrainSample
from thor.algos.losses import GRPOLoss
from thor.algos.problems import ProblemStream
from thor.types import Episode

if TYPE_CHECKING:
    from thor.agents.backends.base import Policy
    from thor.agents.rollout import Rollout, RolloutEngine

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
    """One step's samples, the episodes they came from, and metrics to log.

    ``rollouts`` are the engine's :class:`~thor.agents.rollout.Rollout` s this step made; they
    may hold failure snapshots (sandbox sessions), so whoever collects closes them
    (:meth:`close`; the trainer does after the update).
    """

    samples: list[TrainSample]
    episodes: list[Episode]
    metrics: dict[str, float] = field(default_factory=dict)
    rollouts: list[Rollout] = field(default_factory=list)

    def close(self) -> None:
        """Close the rollouts' failure snapshots."""
        rollouts, self.rollouts = self.rollouts, []
        for r in rollouts:
            r.close()


class Algorithm(ABC):
    """An RL algorithm: sample collection (with advantages) and the loss that trains on it."""

    name: str = "algorithm"
    loss: GRPOLoss
    combine: str = "joint"
    """How the sample kinds share the loss: ``joint`` (one token mean over every sample, THOR's
    way) or ``separate`` (each kind gets its own token mean, see :meth:`sample_weights`)."""

    @abstractmethod
    def collect(self, ctx: CollectContext) -> Collected:
        """Draw problems, run rollouts and return train samples for one step."""

    def sample_weights(self, batch: Batch) -> torch.Tensor:
        """Per-sample loss weights of ``batch``; with ``combine="separate"`` each kind gets its
        own token mean.

        Separate token means are a joint token mean with weights ``w_k * N / N_k`` (N tokens in
        all, N_k of kind k), so one backward pass serves both modes.
        """
        weight = batch.sample_weight.clone()
        if self.combine != "separate":
            return weight
        total = max(1, batch.num_loss_tokens)
        for kind in KINDS:
            sel = batch.kind_mask(kind)
            n_k = int(batch.loss_mask[sel].sum())
            if n_k:
                weight[sel] = weight[sel] * total / n_k
        return weight

    def config_dict(self) -> dict[str, Any]:
        cfg = getattr(self, "config", None)
        return cfg.model_dump(mode="json") if cfg is not None else {}
