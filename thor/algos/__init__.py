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
