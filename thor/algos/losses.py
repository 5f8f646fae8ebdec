"""The GRPO/THOR policy loss: asymmetric and dual clipping, an NLL term, an optional KL term.

Per token (``A`` the sample's advantage, ``r = exp(logp - old_logp)``)::

    objective = min(r * A, clamp(r, 1 - eps_low, 1 + eps_high) * A)
    objective = max(objective, dual_clip * A)            where A < 0 (dual clip, c = 3)
    loss_t    = -objective * w  +  nll_coef * (-logp) * [A > 0] * w  +  kl_coef * k3(ref, logp) * w

where ``w`` is an optional per-sample weight. The dual clip matches verl's
``compute_policy_loss`` exactly: there the per-token loss for ``A < 0`` is
``min(-A * c, max(-A * r, -A * clip(r)))``, i.e. the objective above; and, as in verl, the log-ratio
is clamped to ``[-20, 20]`` before ``exp`` so that a stale token cannot overflow.

Every term is aggregated with the same :meth:`GRPOLoss.aggregate` over the model-written tokens
(``loss_mask``), so the NLL term weighs each positive-sample token like the policy term does:

- ``token_mean`` (THOR, DAPO): the sum over every model-written token of the batch divided by their
  number.
- ``seq_mean_token_mean`` (original GRPO): the mean over tokens within each sample, then over samples.
- ``seq_mean_token_sum_norm`` (Dr. GRPO): the sum over tokens divided by a constant length
  (``norm_length``, else the padded length), then the mean over samples.

For gradient accumulation over micro-batches, pass ``denominator`` (the whole batch's token count
for ``token_mean``, its sample count for the other two) so that the micro-batch losses add up to
the loss of the whole batch.

Masked positions get exactly zero gradient: inputs are replaced by zeros at masked positions
*before* anything is computed, so even ``-inf``/NaN log-probs on padding cannot leak NaN into the
backward pass.

A variant overrides one method (:meth:`~GRPOLoss.per_token_objective`, :meth:`~GRPOLoss.aggregate`,
:meth:`~GRPOLoss.ratio` or :meth:`~GRPOLoss.nll_mask`), not a ``loss_type`` string, and is
registered in :data:`thor.LOSSES`; an algorithm config names it (``loss: {name: cispo, ...}``,
see ``examples/cispo_loss.py``).

Example:
    >>> import torch
    >>> loss_fn = GRPOLoss()
    >>> logp = torch.log(torch.tensor([[0.5, 0.5, 0.5]])).requires_grad_()
    >>> old = torch.log(torch.tensor([[0.25, 0.5, 0.5]]))
    >>> out = loss_fn(logp, old, torch.tensor([1.0]), torch.tensor([[1, 1, 0]]))
    >>> round(out.loss.item(), 4)  # ratios 2 (clipped to 1.28) and 1; NLL on the positive sample
    -1.1331
    >>> out.metrics()["clip_frac_high"]
    0.5
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from thor.config import ThorConfig, validate_config
from thor.registries import LOSSES

__all__ = ["Aggregation", "GRPOLoss", "GRPOLossConfig", "LossOutput", "kl_k3", "masked_mean"]

Aggregation = Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]


class GRPOLossConfig(ThorConfig):
    """Settings of :class:`GRPOLoss` (THOR's defaults).

    Example:
        >>> GRPOLossConfig(eps_high=0.2).eps_high
        0.2
    """

    eps_low: float = Field(0.2, ge=0.0, lt=1.0, description="Lower clip: ratio >= 1 - eps_low")
    eps_high: float = Field(
        0.28, ge=0.0, description="Upper clip: ratio <= 1 + eps_high (DAPO clip-higher)"
    )
    dual_clip: float | None = Field(
        3.0, gt=1.0, description="Dual-clip constant c for A < 0; None turns it off"
    )
    nll_coef: float = Field(
        0.01, ge=0.0, description="alpha: weight of the NLL on positive-advantage samples"
    )
    kl_coef: float = Field(
        0.0, ge=0.0, description="Weight of the k3 KL to a reference model; 0 = off"
    )
    aggregation: Aggregation = "token_mean"
    norm_length: int | None = Field(
        None,
        ge=1,
        description="seq_mean_token_sum_norm: constant length divisor (None = padded length)",
    )
    log_ratio_clamp: float = Field(
        20.0, gt=0.0, description="Clamp of logp - old_logp before exp (verl)"
    )


@dataclass(frozen=True)
class LossOutput:
    """The loss to backpropagate and detached metrics (0-d tensors: no device sync until read).

    Attributes:
        loss: the total loss (policy + nll_coef * nll + kl_coef * kl), with gradient.
        policy_loss: the aggregated clipped-surrogate loss.
        nll_loss: the aggregated NLL on positive-advantage tokens (before ``nll_coef``).
        kl: the aggregated k3 KL to the reference (0 when no reference was given).
        clip_frac_low: fraction of tokens with A < 0 clipped at ``1 - eps_low`` (no gradient).
        clip_frac_high: fraction of tokens with A > 0 clipped at ``1 + eps_high`` (no gradient).
        dual_clip_frac: fraction of tokens with A < 0 and ratio > ``dual_clip`` (no gradient).
        ratio_mean: mean ratio over the model-written tokens.
        ratio_max: largest ratio over the model-written tokens.
        tokens: number of model-written tokens.
    """

    loss: Tensor
    policy_loss: Tensor
    nll_loss: Tensor
    kl: Tensor
    clip_frac_low: Tensor
    clip_frac_high: Tensor
    dual_clip_frac: Tensor
    ratio_mean: Tensor
    ratio_max: Tensor
    tokens: Tensor

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Every field but ``loss`` as floats (``loss`` itself is reported detached as ``loss``)."""
        out = {f"{prefix}loss": float(self.loss.detach())}
        for f in fields(self):
            if f.name != "loss":
                out[prefix + f.name] = float(getattr(self, f.name))
        return out


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask`` is set (0 when the mask is empty)."""
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp(min=1.0)


def kl_k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Schulman's k3 estimator of KL(pi || ref) per token: ``exp(d) - d - 1`` with ``d = ref - logp``.

    Non-negative, unbiased, low variance (verl's ``low_var_kl`` before its clamp).
    """
    d = ref_logprobs - logprobs
    return torch.exp(d) - d - 1.0


class GRPOLoss(nn.Module):
    """Clipped-surrogate policy loss of GRPO/THOR over token log-probabilities.

    Args:
        config: a :class:`GRPOLossConfig` (or a mapping); keyword arguments build one instead.

    Inputs to :meth:`forward` are ``(B, T)`` tensors aligned position by position (``logprobs[b, t]``
    scores token ``t`` of sample ``b``); ``advantages`` is ``(B,)`` or ``(B, T)``.

    Example:
        >>> import torch
        >>> class NoClip(GRPOLoss):  # a variant: plain policy gradient, one overridden method
        ...     def per_token_objective(self, ratio, advantages):
        ...         return ratio * advantages
        >>> logp = torch.zeros(1, 2, requires_grad=True)
        >>> out = NoClip(nll_coef=0.0)(logp, torch.full((1, 2), -1.0), torch.tensor([1.0]), torch.ones(1, 2))
        >>> round(out.loss.item(), 4)  # -e: the ratio e is not clipped
        -2.7183
    """

    def __init__(self, config: GRPOLossConfig | dict | None = None, **kwargs: object) -> None:
        super().__init__()
        if config is not None and kwargs:
            raise TypeError("pass a config or keyword arguments, not both")
        self.config: GRPOLossConfig = validate_config(
            GRPOLossConfig, config if config is not None else kwargs
        )

    @property
    def uses_reference(self) -> bool:
        """Whether the loss needs a reference model's log-probs (a KL term)."""
        return self.config.kl_coef > 0

    # -- hooks a variant may override --------------------------------------------------------
    def ratio(self, logprobs: Tensor, old_logprobs: Tensor) -> Tensor:
        """Importance ratio per token, ``exp(clamp(logp - old_logp))``."""
        c = self.config.log_ratio_clamp
        return torch.exp(torch.clamp(logprobs - old_logprobs, min=-c, max=c))

    def per_token_objective(self, ratio: Tensor, advantages: Tensor) -> Tensor:
        """The objective to *maximise* per token: asymmetric clip, then dual clip for A < 0."""
        cfg = self.config
        clipped = torch.clamp(ratio, 1.0 - cfg.eps_low, 1.0 + cfg.eps_high)
        objective = torch.minimum(ratio * advantages, clipped * advantages)
        if cfg.dual_clip is not None:
            dual = torch.maximum(objective, cfg.dual_clip * advantages)
            objective = torch.where(advantages < 0, dual, objective)
        return objective

    def nll_mask(self, advantages: Tensor, loss_mask: Tensor) -> Tensor:
        """Tokens that get the NLL term: model-written tokens of positive-advantage samples."""
        return loss_mask & (advantages > 0)

    def aggregate(
        self, values: Tensor, loss_mask: Tensor, denominator: float | Tensor | None = None
    ) -> Tensor:
        """Reduce per-token ``values`` (already zero where masked) to a scalar.

        Args:
            values: ``(B, T)`` per-token losses.
            loss_mask: ``(B, T)`` bool, the model-written tokens.
            denominator: overrides the batch's own token count (``token_mean``) or sample count
                (the ``seq_mean_*`` modes), for gradient accumulation.
        """
        mode = self.config.aggregation
        m = loss_mask.to(values.dtype)
        if mode == "token_mean":
            den = m.sum().clamp(min=1.0) if denominator is None else denominator
            return (values * m).sum() / den
        if mode == "seq_mean_token_mean":
            per_seq = (values * m).sum(dim=-1) / m.sum(dim=-1).clamp(min=1.0)
        else:  # seq_mean_token_sum_norm (Dr. GRPO)
            per_seq = (values * m).sum(dim=-1) / float(self.config.norm_length or values.shape[-1])
        if denominator is None:
            # Samples without a single model-written token are left out of the mean (as verl does).
            denominator = (m.sum(dim=-1) > 0).to(values.dtype).sum().clamp(min=1.0)
        return per_seq.sum() / denominator

    # -- the loss ----------------------------------------------------------------------------
    def forward(
        self,
        logprobs: Tensor,
        old_logprobs: Tensor,
        advantages: Tensor,
        loss_mask: Tensor,
        ref_logprobs: Tensor | None = None,
        sample_weight: Tensor | None = None,
        *,
        denominator: float | Tensor | None = None,
    ) -> LossOutput:
        """Compute the loss and its metrics.

        Args:
            logprobs: ``(B, T)`` log-probabilities under the model being trained (with gradient).
            old_logprobs: ``(B, T)`` log-probabilities under the policy that sampled (no gradient).
            advantages: ``(B,)`` per sample or ``(B, T)`` per token.
            loss_mask: ``(B, T)``, nonzero on model-written tokens (prompt, tool output, padding 0).
            ref_logprobs: ``(B, T)`` reference log-probabilities; required when ``kl_coef > 0``,
                otherwise only reported as the ``kl`` metric.
            sample_weight: ``(B,)`` weight per sample (e.g. step vs trajectory samples).
            denominator: see :meth:`aggregate`.

        Raises:
            ValueError: mismatched shapes, or ``kl_coef > 0`` without ``ref_logprobs``.
        """
        cfg = self.config
        mask, adv, weight = self._check(
            logprobs, old_logprobs, advantages, loss_mask, ref_logprobs, sample_weight
        )
        zero = torch.zeros((), dtype=logprobs.dtype, device=logprobs.device)
        # Zero the inputs at masked positions first: exact zero gradient there, no NaN from padding.
        logp = torch.where(mask, logprobs, zero)
        old = torch.where(mask, old_logprobs.detach(), zero)
        adv = torch.where(mask, adv.detach(), zero)
        ratio = self.ratio(logp, old)
        policy_tok = -self.per_token_objective(ratio, adv) * weight
        policy_loss = self.aggregate(torch.where(mask, policy_tok, zero), mask, denominator)
        loss = policy_loss
        nll_loss = zero
        if cfg.nll_coef > 0:
            nll_tok = torch.where(self.nll_mask(adv, mask), -logp, zero) * weight
            nll_loss = self.aggregate(nll_tok, mask, denominator)
            loss = loss + cfg.nll_coef * nll_loss
        kl = zero
        if ref_logprobs is not None:
            ref = torch.where(mask, ref_logprobs.detach(), zero)
            kl_tok = torch.where(mask, kl_k3(logp, ref), zero) * weight
            kl = self.aggregate(kl_tok, mask, denominator)
            if cfg.kl_coef > 0:
                loss = loss + cfg.kl_coef * kl
        return LossOutput(
            loss=loss,
            policy_loss=policy_loss.detach(),
            nll_loss=nll_loss.detach(),
            kl=kl.detach(),
            **self._clip_metrics(ratio.detach(), adv, mask),
        )

    # -- helpers -----------------------------------------------------------------------------
    def _check(
        self,
        logprobs: Tensor,
        old_logprobs: Tensor,
        advantages: Tensor,
        loss_mask: Tensor,
        ref_logprobs: Tensor | None,
        sample_weight: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        if logprobs.dim() != 2:
            raise ValueError(f"logprobs must be (batch, tokens), got shape {tuple(logprobs.shape)}")
        shape = logprobs.shape
        for name, t in (
            ("old_logprobs", old_logprobs),
            ("loss_mask", loss_mask),
            ("ref_logprobs", ref_logprobs),
        ):
            if t is not None and t.shape != shape:
                raise ValueError(
                    f"{name} has shape {tuple(t.shape)}, expected {tuple(shape)} like logprobs"
                )
        if self.config.kl_coef > 0 and ref_logprobs is None:
            raise ValueError(
                f"kl_coef={self.config.kl_coef} > 0 needs ref_logprobs (or set kl_coef=0)"
            )
        if advantages.dim() == 1 and advantages.shape[0] == shape[0]:
            advantages = advantages[:, None]
        elif advantages.shape != shape:
            raise ValueError(
                f"advantages must be ({shape[0]},) or {tuple(shape)}, got {tuple(advantages.shape)}"
            )
        adv = advantages.to(logprobs.dtype).expand(shape)
        if sample_weight is None:
            weight = torch.ones((shape[0], 1), dtype=logprobs.dtype, device=logprobs.device)
        elif sample_weight.shape == (shape[0],):
            weight = sample_weight.detach().to(logprobs.dtype)[:, None]
        else:
            raise ValueError(
                f"sample_weight must be ({shape[0]},), got {tuple(sample_weight.shape)}"
            )
        return loss_mask.bool(), adv, weight

    def _clip_metrics(self, ratio: Tensor, adv: Tensor, mask: Tensor) -> dict[str, Tensor]:
        cfg = self.config
        low = (adv < 0) & (ratio < 1.0 - cfg.eps_low)
        high = (adv > 0) & (ratio > 1.0 + cfg.eps_high)
        if cfg.dual_clip is not None:
            dual = (adv < 0) & (ratio > cfg.dual_clip)
        else:
            dual = torch.zeros_like(mask)
        fl = ratio.dtype
        return {
            "clip_frac_low": masked_mean(low.to(fl), mask),
            "clip_frac_high": masked_mean(high.to(fl), mask),
            "dual_clip_frac": masked_mean(dual.to(fl), mask),
            "ratio_mean": masked_mean(ratio, mask),
            "ratio_max": ratio.masked_fill(~mask, 0.0).max(),  # ratios are positive; 0 if no token
            "tokens": mask.sum(),
        }


LOSSES.register(
    "grpo", config=GRPOLossConfig, factory=GRPOLoss, description="THOR's clipped surrogate"
)
