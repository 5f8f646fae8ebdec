"""Training algorithms, built from small composable parts.

- :mod:`thor.algos.advantages`: group-relative advantages (GRPO, Dr. GRPO, RLOO) and the
  zero-spread test of DAPO's dynamic sampling; pure functions.
- :mod:`thor.algos.losses`: :class:`GRPOLoss` (asymmetric and dual clipping, NLL on positive
  samples, optional KL); a variant overrides one method.
- :mod:`thor.algos.logprobs`: per-token log-probabilities (and entropies) of a causal LM.
- :mod:`thor.algos.batch`: :class:`TrainSample` and :func:`collate` into a padded :class:`Batch`.
- :mod:`thor.algos.step_level`: branch points at failed code steps and :class:`StepSample`.

Example:
    >>> import torch
    >>> from thor.algos import group_advantages
    >>> group_advantages(torch.tensor([1.0, 0.0]), 2, scale="none")
    tensor([ 0.5000, -0.5000])
"""

from __future__ import annotations

from thor.algos.advantages import group_advantages, rloo_advantages, zero_spread_groups
from thor.algos.batch import Batch, TrainSample, collate
from thor.algos.logprobs import token_logprobs, token_logprobs_and_entropy
from thor.algos.losses import GRPOLoss, GRPOLossConfig, LossOutput, kl_k3
from thor.algos.step_level import BranchPoint, StepSample, branch_points

__all__ = [
    "Batch",
    "BranchPoint",
    "GRPOLoss",
    "GRPOLossConfig",
    "LossOutput",
    "StepSample",
    "TrainSample",
    "branch_points",
    "collate",
    "group_advantages",
    "kl_k3",
    "rloo_advantages",
    "token_logprobs",
    "token_logprobs_and_entropy",
    "zero_spread_groups",
]

# -- algorithms, registered in thor.ALGORITHMS ---------------------------------------------------
from typing import Literal

from thor.algos.base import Algorithm, CollectContext, Collected
from thor.algos.grpo import GRPO, GRPOConfig
from thor.algos.hierarchical import ThorAlgorithm, ThorAlgorithmConfig
from thor.registries import ALGORITHMS


class DrGRPOConfig(GRPOConfig):
    """GRPO without std scaling of advantages (Dr. GRPO)."""

    advantage: Literal["grpo", "drgrpo", "rloo"] = "drgrpo"


class RLOOConfig(GRPOConfig):
    """Leave-one-out baseline (RLOO)."""

    advantage: Literal["grpo", "drgrpo", "rloo"] = "rloo"


ALGORITHMS.register(
    "grpo",
    config=GRPOConfig,
    factory=GRPO,
    description="Trajectory-level GRPO with dynamic sampling",
)
ALGORITHMS.register(
    "drgrpo", config=DrGRPOConfig, factory=GRPO, description="GRPO, advantages without std scaling"
)
ALGORITHMS.register(
    "rloo", config=RLOOConfig, factory=GRPO, description="GRPO machinery, RLOO advantages"
)
ALGORITHMS.register(
    "thor",
    config=ThorAlgorithmConfig,
    factory=ThorAlgorithm,
    description="THOR: trajectory GRPO + step-level RL",
)

__all__ += [
    "GRPO",
    "Algorithm",
    "CollectContext",
    "Collected",
    "GRPOConfig",
    "ThorAlgorithm",
    "ThorAlgorithmConfig",
]
