from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from thor.algos.advantages import group_advantages, rloo_advantages, zero_spread_groups

FLOATS = st.floats(min_value=-100.0, max_value=100.0, allow_nan=False, width=32)


@st.composite
def grouped_rewards(draw: st.DrawFn, min_group: int = 1) -> tuple[torch.Tensor, int]:
    g = draw(st.integers(min_value=min_group, max_value=8))
    n_groups = draw(st.integers(min_value=1, max_value=5))
    values = draw(st.lists(FLOATS, min_size=g * n_groups, max_size=g * n_groups))
    return torch.tensor(values, dtype=torch.float64), g


def _per_group(x: torch.Tensor, g: int) -> torch.Tensor:
    return x.view(-1, g)


@settings(max_examples=100, deadline=None)
@given(grouped_rewards(), st.sampled_from(["std", "none"]))
def test_group_mean_is_zero_and_finite(data: tuple[torch.Tensor, int], scale: str) -> None:
    r, g = data
    a = group_advantages(r, g, scale=scale)
    assert a.shape == r.shape
    assert torch.isfinite(a).all()
    torch.testing.assert_close(
        _per_group(a, g).mean(dim=1), torch.zeros(len(r) // g, dtype=a.dtype), atol=1e-6, rtol=0
    )


@settings(max_examples=100, deadline=None)
@given(grouped_rewards(), st.sampled_from(["std", "none"]), st.floats(-50, 50, allow_nan=False))
def test_invariant_to_a_constant_added_to_a_group(
    data: tuple[torch.Tensor, int], scale: str, c: float
) -> None:
    r, g = data
    shifted = r.clone()
    shifted[:g] += c  # only the first group moves
    torch.testing.assert_close(
        group_advantages(shifted, g, scale=scale),
        group_advantages(r, g, scale=scale),
        atol=1e-6,
        rtol=1e-6,
    )


@settings(max_examples=100, deadline=None)
@given(grouped_rewards(min_group=2), st.floats(0.1, 100.0))
def test_std_scale_is_scale_invariant(data: tuple[torch.Tensor, int], k: float) -> None:
    r, g = data
    std = _per_group(r, g).std(dim=1)
    # eps (1e-6) only matters for near-constant groups: keep std * k well above it
    assume(bool((std * min(k, 1.0) > 1e-2).all()))
    torch.testing.assert_close(
        group_advantages(r * k, g), group_advantages(r, g), atol=1e-3, rtol=1e-3
    )


@settings(max_examples=100, deadline=None)
@given(grouped_rewards(min_group=2))
def test_none_scale_is_linear(data: tuple[torch.Tensor, int]) -> None:
    r, g = data
    torch.testing.assert_close(
        group_advantages(3.0 * r, g, scale="none"), 3.0 * group_advantages(r, g, scale="none")
    )


@pytest.mark.parametrize("eps", [1e-6, 0.0])
@pytest.mark.parametrize("value", [0.0, 1.0, -7.5])
def test_constant_group_gives_zeros_never_nan(value: float, eps: float) -> None:
    r = torch.full((8,), value)
    for scale in ("std", "none"):
        a = group_advantages(r, 4, scale=scale, eps=eps)
        assert torch.equal(a, torch.zeros(8))
    assert torch.equal(rloo_advantages(r, 4), torch.zeros(8))
    assert zero_spread_groups(r, 4).tolist() == [True, True]


def test_sample_std_convention_hand_computed() -> None:
    # one success out of four: mean 0.25, sample std sqrt(0.25) = 0.5 (population std would be 0.433)
    a = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4, eps=0.0)
    torch.testing.assert_close(a, torch.tensor([1.5, -0.5, -0.5, -0.5]))
    # matches torch.std's default (unbiased), which verl and TRL use
    r = torch.tensor([0.3, 0.9, 0.1, 0.5])
    torch.testing.assert_close(group_advantages(r, 4, eps=0.0), (r - r.mean()) / r.std())


def test_group_of_one_is_zero() -> None:
    assert torch.equal(group_advantages(torch.tensor([1.0, 0.0, 5.0]), 1), torch.zeros(3))


def test_integer_rewards_are_accepted() -> None:
    a = group_advantages(torch.tensor([1, 0]), 2, scale="none")
    assert a.dtype.is_floating_point
    torch.testing.assert_close(a, torch.tensor([0.5, -0.5]))


@settings(max_examples=100, deadline=None)
@given(grouped_rewards(min_group=2))
def test_rloo_matches_its_definition(data: tuple[torch.Tensor, int]) -> None:
    r, g = data
    a = rloo_advantages(r, g)
    grouped = r.view(-1, g)
    for gi in range(grouped.shape[0]):
        for i in range(g):
            others = torch.cat([grouped[gi, :i], grouped[gi, i + 1 :]])
            assert math.isclose(
                a[gi * g + i].item(), (grouped[gi, i] - others.mean()).item(), abs_tol=1e-6
            )
    torch.testing.assert_close(a, group_advantages(r, g, scale="none") * g / (g - 1))


@settings(max_examples=100, deadline=None)
@given(grouped_rewards())
def test_zero_spread_groups(data: tuple[torch.Tensor, int]) -> None:
    r, g = data
    flags = zero_spread_groups(r, g)
    assert flags.dtype == torch.bool and flags.shape == (len(r) // g,)
    for gi, flag in enumerate(flags.tolist()):
        assert flag == (len(set(r.view(-1, g)[gi].tolist())) == 1)


@pytest.mark.parametrize("fn", [group_advantages, rloo_advantages, zero_spread_groups])
def test_shape_errors_are_clear(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="not a multiple of group_size=4"):
        fn(torch.zeros(6), 4)
    with pytest.raises(ValueError, match="group_size must be an integer >= 1"):
        fn(torch.zeros(6), 0)
    with pytest.raises(ValueError, match="group_size must be an integer >= 1"):
        fn(torch.zeros(6), -2)
    with pytest.raises(ValueError, match="1-D"):
        fn(torch.zeros(2, 4), 4)


def test_rloo_needs_two_samples_and_scale_is_checked() -> None:
    with pytest.raises(ValueError, match="group_size >= 2"):
        rloo_advantages(torch.zeros(3), 1)
    with pytest.raises(ValueError, match="scale"):
        group_advantages(torch.zeros(4), 2, scale="batch")  # type: ignore[arg-type]
