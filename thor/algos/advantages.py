"""Group-relative advantages: pure torch functions over a flat vector of rewards.

Rewards come in *consecutive groups* of ``group_size`` samples of one prompt (sample ``i`` belongs
to group ``i // group_size``), which is how a batch-first policy returns ``G`` completions of a
repeated prompt.

Standard deviation convention: thor uses the **sample** standard deviation (Bessel's correction,
divisor ``G - 1``), as both reference implementations do: verl's ``compute_grpo_outcome_advantage``
calls ``torch.std`` (unbiased by default) with ``epsilon=1e-6``, and TRL's ``GRPOTrainer`` uses its
``nanstd`` helper (with Bessel's correction) and adds ``1e-4``. THOR's release is a verl fork, so
thor's default matches verl exactly: ``(r - mean) / (std_sample + 1e-6)``. For binary rewards with
``k`` successes out of ``G`` the sample std is ``sqrt(k (G - k) / (G (G - 1)))``.

Edge cases are total, never NaN: a group of identical rewards (zero spread) gives zeros; a group of
one sample gives zero (a sample is its own baseline; verl instead returns the raw reward there).

Example:
    >>> import torch
    >>> group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0]), 3)
    tensor([ 1.1547, -0.5773, -0.5773, -1.1547,  0.5773,  0.5773])
    >>> group_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), 2, scale="none")
    tensor([ 0.5000, -0.5000,  0.0000,  0.0000])
    >>> rloo_advantages(torch.tensor([1.0, 0.0, 0.0]), 3)
    tensor([ 1.0000, -0.5000, -0.5000])
    >>> zero_spread_groups(torch.tensor([1.0, 1.0, 0.0, 1.0]), 2)
    tensor([ True, False])
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["AdvantageScale", "group_advantages", "rloo_advantages", "zero_spread_groups"]

AdvantageScale = Literal["std", "none"]


def _grouped(rewards: Tensor, group_size: int) -> Tensor:
    """Validate and reshape a flat reward vector into ``(num_groups, group_size)`` (float)."""
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1:
        raise ValueError(f"group_size must be an integer >= 1, got {group_size!r}")
    if not isinstance(rewards, Tensor):
        rewards = torch.as_tensor(rewards)
    if rewards.dim() != 1:
        raise ValueError(
            f"rewards must be a 1-D tensor (one reward per sample), got shape {tuple(rewards.shape)}"
        )
    n = rewards.shape[0]
    if n % group_size:
        raise ValueError(
            f"rewards has {n} entries, which is not a multiple of group_size={group_size} "
            f"({n % group_size} left over): pass whole groups"
        )
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())
    return rewards.view(-1, group_size)


def group_advantages(
    rewards: Tensor, group_size: int, *, scale: AdvantageScale = "std", eps: float = 1e-6
) -> Tensor:
    """GRPO advantages per consecutive group: ``(r - mean) / (std + eps)``, or ``r - mean``.

    Args:
        rewards: 1-D tensor, one reward per sample, groups consecutive.
        group_size: samples per group (G).
        scale: ``"std"`` divides by the group's sample standard deviation plus ``eps`` (GRPO,
            THOR); ``"none"`` only subtracts the group mean (Dr. GRPO).
        eps: added to the standard deviation.

    Returns:
        A tensor shaped like ``rewards`` (float). Zero-spread groups give exact zeros.

    Raises:
        ValueError: ``group_size < 1``, a length that is not a multiple of it, a non 1-D tensor,
            or an unknown ``scale``.
    """
    if scale not in ("std", "none"):
        raise ValueError(f"scale must be 'std' or 'none', got {scale!r}")
    grouped = _grouped(rewards, group_size)
    centered = grouped - grouped.mean(dim=1, keepdim=True)
    if scale == "none" or group_size == 1:
        out = centered if group_size > 1 else torch.zeros_like(grouped)
        return out.reshape(-1)
    std = grouped.std(dim=1, keepdim=True, unbiased=True)
    # Exact zeros for zero-spread groups even when eps == 0 (0 / 0 would be NaN).
    out = torch.where(std > 0, centered / (std + eps), torch.zeros_like(centered))
    return out.reshape(-1)


def rloo_advantages(rewards: Tensor, group_size: int) -> Tensor:
    """REINFORCE leave-one-out advantages: ``r_i - mean_{j != i} r_j`` within each group.

    Equals ``G / (G - 1) * (r_i - mean)``; a zero-spread group gives zeros.

    Raises:
        ValueError: as :func:`group_advantages`, and ``group_size < 2`` (no one to leave out).
    """
    grouped = _grouped(rewards, group_size)
    if group_size < 2:
        raise ValueError(
            f"rloo_advantages needs group_size >= 2 (a leave-one-out baseline), got {group_size}"
        )
    baseline = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)
    return (grouped - baseline).reshape(-1)


def zero_spread_groups(rewards: Tensor, group_size: int) -> Tensor:
    """Which groups have identical rewards (no learning signal): one bool per group.

    DAPO's dynamic sampling drops these groups and draws more prompts.

    Raises:
        ValueError: as :func:`group_advantages`.
    """
    grouped = _grouped(rewards, group_size)
    return (grouped == grouped[:, :1]).all(dim=1)
