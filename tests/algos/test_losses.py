from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from thor.algos.losses import GRPOLoss, GRPOLossConfig, kl_k3
from thor.errors import ConfigError

D = torch.float64

# (ratio, advantage) -> per-token objective, worked out by hand with eps_low 0.2, eps_high 0.28, c 3
HAND = [
    # ratio, A, objective, d objective / d logp (= ratio * A where the unclipped branch is active)
    (1.50, 1.0, 1.28, 0.0),  # clipped high at 1 + 0.28
    (1.25, 1.0, 1.25, 1.25),  # inside the asymmetric range (a symmetric 0.2 clip would give 1.2)
    (0.50, 1.0, 0.50, 0.50),  # A > 0 is never clipped below
    (0.75, -1.0, -0.80, 0.0),  # clipped low at 1 - 0.2
    (1.50, -1.0, -1.50, -1.50),  # A < 0, ratio above 1 + eps_high: unclipped, above the dual bound
    (5.00, -1.0, -3.00, 0.0),  # dual clip: max(-5, 3 * -1) = -3
    (5.00, -2.0, -6.00, 0.0),  # dual clip scales with A: max(-10, -6)
]


def _hand_inputs() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    ratio = torch.tensor([[r] for r, *_ in HAND], dtype=D)
    logp = torch.log(ratio).requires_grad_()
    old = torch.zeros_like(ratio)
    adv = torch.tensor([a for _, a, *_ in HAND], dtype=D)
    return logp, old, adv, torch.ones_like(ratio)


def test_asymmetric_and_dual_clip_values_by_hand() -> None:
    logp, old, adv, mask = _hand_inputs()
    out = GRPOLoss(nll_coef=0.0)(logp, old, adv, mask)
    expected = -sum(obj for *_, obj, _ in HAND) / len(HAND)  # = 8.27 / 7
    assert math.isclose(expected, 8.27 / 7)
    assert math.isclose(out.loss.item(), expected, rel_tol=1e-12)
    out.loss.backward()
    grads = [-g / len(HAND) for *_, g in HAND]
    torch.testing.assert_close(logp.grad, torch.tensor([[g] for g in grads], dtype=D))
    m = out.metrics()
    assert m["clip_frac_high"] == pytest.approx(1 / 7)
    assert m["clip_frac_low"] == pytest.approx(1 / 7)
    assert m["dual_clip_frac"] == pytest.approx(2 / 7)
    assert m["ratio_max"] == pytest.approx(5.0)
    assert m["ratio_mean"] == pytest.approx(sum(r for r, *_ in HAND) / 7)
    assert m["tokens"] == 7 and m["kl"] == 0.0 and m["nll_loss"] == 0.0


def test_dual_clip_off_and_symmetric_clip() -> None:
    logp, old, adv, mask = _hand_inputs()
    no_dual = GRPOLoss(nll_coef=0.0, dual_clip=None)(logp, old, adv, mask)
    objs = [obj for *_, obj, _ in HAND]
    objs[5], objs[6] = -5.0, -10.0  # min(r A, clip(r) A) only
    assert math.isclose(no_dual.loss.item(), -sum(objs) / 7, rel_tol=1e-12)
    assert no_dual.metrics()["dual_clip_frac"] == 0.0
    sym = GRPOLoss(nll_coef=0.0, eps_high=0.2)(logp, old, adv, mask)
    objs = [obj for *_, obj, _ in HAND]
    objs[1], objs[0] = 1.2, 1.2
    assert math.isclose(sym.loss.item(), -sum(objs) / 7, rel_tol=1e-12)
    assert sym.metrics()["clip_frac_high"] == pytest.approx(2 / 7)


def test_verl_formula_matches() -> None:
    """Our objective against verl's compute_policy_loss written out (loss = -objective)."""
    g = torch.Generator().manual_seed(0)
    logp = torch.randn(6, 9, generator=g, dtype=D)
    old = logp + torch.randn(6, 9, generator=g, dtype=D)
    adv = torch.randn(6, 9, generator=g, dtype=D)
    ratio = torch.exp(logp - old)
    l1 = -adv * ratio
    l2 = -adv * torch.clamp(ratio, 1 - 0.2, 1 + 0.28)
    c1 = torch.maximum(l1, l2)
    c2 = torch.min(-adv * 3.0, c1)
    verl = torch.where(adv < 0, c2, c1)
    ours = -GRPOLoss().per_token_objective(ratio, adv)
    torch.testing.assert_close(ours, verl)


def test_masked_tokens_get_exactly_zero_gradient() -> None:
    logp = torch.tensor(
        [[-0.5, -1.0, float("-inf"), float("nan")], [-2.0, -0.1, -0.3, -40.0]], dtype=D
    )
    logp.requires_grad_()
    old = torch.tensor([[-0.4, -1.2, 3.0, float("nan")], [-2.5, 0.0, -0.2, 10.0]], dtype=D)
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0]])
    ref = torch.tensor([[-0.5, -1.0, float("nan"), 5.0], [float("inf"), -0.2, -0.3, -1.0]], dtype=D)
    out = GRPOLoss(kl_coef=0.1)(
        logp, old, torch.tensor([1.5, -0.7], dtype=D), mask, ref_logprobs=ref
    )
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert logp.grad is not None
    assert torch.equal(logp.grad[mask == 0], torch.zeros(int((mask == 0).sum()), dtype=D))
    assert torch.isfinite(logp.grad).all()
    assert (logp.grad[mask == 1] != 0).all()


def test_nll_only_on_positive_advantage_samples() -> None:
    probs = torch.tensor([[0.5, 0.25], [0.5, 0.5], [0.1, 0.2]], dtype=D)
    logp = torch.log(probs).requires_grad_()
    old = logp.detach().clone()  # ratio 1
    adv = torch.tensor([1.0, -1.0, 0.0], dtype=D)
    out = GRPOLoss(nll_coef=0.5)(logp, old, adv, torch.ones_like(probs))
    nll = (-math.log(0.5) - math.log(0.25)) / 6  # only sample 0, over all 6 model tokens
    assert out.nll_loss.item() == pytest.approx(nll)
    assert out.policy_loss.item() == pytest.approx(0.0)  # (-1 - 1 + 1 + 1 + 0 + 0) / 6
    assert out.loss.item() == pytest.approx(0.5 * nll)
    out.loss.backward()
    expected = torch.tensor([[-1.5 / 6] * 2, [1 / 6] * 2, [0.0, 0.0]], dtype=D)
    torch.testing.assert_close(logp.grad, expected)


def test_kl_off_by_default_and_needs_a_reference_when_on() -> None:
    assert GRPOLossConfig().kl_coef == 0.0
    logp = torch.log(torch.tensor([[0.5]], dtype=D)).requires_grad_()
    ref = torch.log(torch.tensor([[0.25]], dtype=D))
    adv, mask = torch.tensor([0.0], dtype=D), torch.ones(1, 1)
    off = GRPOLoss()(logp, logp.detach(), adv, mask)  # no reference needed
    assert off.loss.item() == 0.0 and off.kl.item() == 0.0
    with pytest.raises(ValueError, match="needs ref_logprobs"):
        GRPOLoss(kl_coef=0.1)(logp, logp.detach(), adv, mask)
    k3 = 0.5 - math.log(0.5) - 1  # exp(d) - d - 1 with d = log 0.25 - log 0.5
    on = GRPOLoss(kl_coef=0.1)(logp, logp.detach(), adv, mask, ref_logprobs=ref)
    assert on.kl.item() == pytest.approx(k3) and on.loss.item() == pytest.approx(0.1 * k3)
    # a reference given while KL is off is reported, not trained on
    shown = GRPOLoss()(logp, logp.detach(), adv, mask, ref_logprobs=ref)
    assert shown.kl.item() == pytest.approx(k3) and shown.loss.item() == 0.0
    assert kl_k3(logp, logp).item() == 0.0


def _agg_inputs() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    logp = torch.zeros(2, 4, dtype=D, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    return logp, logp.detach().clone(), torch.tensor([1.0, -2.0], dtype=D), mask


@pytest.mark.parametrize(
    ("aggregation", "norm_length", "expected"),
    [
        ("token_mean", None, (-2 + 8) / 6),  # per-token losses -1, -1 | 2, 2, 2, 2
        ("seq_mean_token_mean", None, (-1 + 2) / 2),
        ("seq_mean_token_sum_norm", None, (-2 / 4 + 8 / 4) / 2),
        ("seq_mean_token_sum_norm", 8, (-2 / 8 + 8 / 8) / 2),
    ],
)
def test_aggregations_by_hand(aggregation: str, norm_length: int | None, expected: float) -> None:
    logp, old, adv, mask = _agg_inputs()
    out = GRPOLoss(nll_coef=0.0, aggregation=aggregation, norm_length=norm_length)(
        logp, old, adv, mask
    )
    assert out.loss.item() == pytest.approx(expected)


@pytest.mark.parametrize(
    "aggregation", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]
)
def test_micro_batches_add_up_with_a_denominator(aggregation: str) -> None:
    g = torch.Generator().manual_seed(1)
    logp = torch.randn(4, 6, generator=g, dtype=D).requires_grad_()
    old = logp.detach() + 0.3 * torch.randn(4, 6, generator=g, dtype=D)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.2], dtype=D)
    mask = torch.tensor([[1] * 6, [1, 1, 0, 0, 0, 0], [0, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0]])
    loss_fn = GRPOLoss(aggregation=aggregation)
    full = loss_fn(logp, old, adv, mask).loss
    den = mask.sum() if aggregation == "token_mean" else 4
    parts = sum(
        loss_fn(
            logp[i : i + 2], old[i : i + 2], adv[i : i + 2], mask[i : i + 2], denominator=den
        ).loss
        for i in (0, 2)
    )
    assert parts.item() == pytest.approx(full.item())


def test_sample_weight() -> None:
    logp, old, adv, mask = _agg_inputs()
    out = GRPOLoss(nll_coef=0.0)(
        logp, old, adv, mask, sample_weight=torch.tensor([0.0, 2.0], dtype=D)
    )
    assert out.loss.item() == pytest.approx(16 / 6)
    out.loss.backward()
    assert torch.equal(logp.grad[0], torch.zeros(4, dtype=D))


class PlainPG(GRPOLoss):
    """A variant: unclipped policy gradient, by overriding one method."""

    def per_token_objective(self, ratio: Tensor, advantages: Tensor) -> Tensor:
        return ratio * advantages


class SumLoss(GRPOLoss):
    """Another variant: sum instead of a mean."""

    def aggregate(
        self, values: Tensor, loss_mask: Tensor, denominator: float | Tensor | None = None
    ) -> Tensor:
        return (values * loss_mask).sum()


def test_a_variant_overrides_one_method() -> None:
    logp, old, adv, mask = _hand_inputs()
    base = GRPOLoss(nll_coef=0.0)(logp, old, adv, mask).loss.item()
    plain = PlainPG(nll_coef=0.0)(logp, old, adv, mask).loss.item()
    assert plain == pytest.approx(-sum(r * a for r, a, *_ in HAND) / 7)
    assert plain != pytest.approx(base)
    assert SumLoss(nll_coef=0.0)(logp, old, adv, mask).loss.item() == pytest.approx(base * 7)


def test_shape_and_config_errors() -> None:
    logp = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="old_logprobs"):
        GRPOLoss()(logp, torch.zeros(2, 4), torch.zeros(2), torch.ones(2, 3))
    with pytest.raises(ValueError, match="advantages"):
        GRPOLoss()(logp, logp, torch.zeros(3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="sample_weight"):
        GRPOLoss()(logp, logp, torch.zeros(2), torch.ones(2, 3), sample_weight=torch.ones(3))
    with pytest.raises(ConfigError, match="eps_hihg"):
        GRPOLoss(eps_hihg=0.3)
    with pytest.raises(ConfigError, match="dual_clip"):
        GRPOLoss(dual_clip=0.5)
    assert GRPOLoss({"eps_low": 0.1}).config.eps_low == 0.1


def test_empty_mask_is_zero_not_nan() -> None:
    logp = torch.zeros(2, 3, requires_grad=True)
    out = GRPOLoss()(logp, logp.detach(), torch.ones(2), torch.zeros(2, 3))
    assert out.loss.item() == 0.0 and out.metrics()["tokens"] == 0
    out.loss.backward()
    assert torch.equal(logp.grad, torch.zeros(2, 3))
