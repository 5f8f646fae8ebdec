"""thor's lean forward (FastLM) and int8 rollout weights on a tiny Llama-family model."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thor.agents.backends._fastlm import FastLM, _attention_mask
from thor.agents.backends._quant import int8_available
from thor.agents.backends.hf import HFPolicy
from thor.errors import PolicyError
from thor.testing import tiny_model, tiny_tokenizer
from thor.types import SamplingParams

GREEDY = SamplingParams(max_tokens=24, temperature=0.0)
SAMPLED = SamplingParams(max_tokens=16, temperature=1.0, seed=7)
PROMPTS = [
    "x = 1",
    "Let me compute this with python.\n```python\nprint(2 ** 10)\n```\n```output\n1024\n```\n",
    "What is 2+2?",
    "a",
]


def _pair(**fast: str) -> tuple[HFPolicy, HFPolicy]:
    model = tiny_model(seed=5, hidden=64, layers=2).to(torch.float32)
    tok = tiny_tokenizer()
    return HFPolicy.from_model(model, tok, engine="hf"), HFPolicy.from_model(model, tok, **fast)


def test_the_tiny_model_takes_the_fast_engine_by_default() -> None:
    policy = HFPolicy.from_model(tiny_model(), tiny_tokenizer())
    assert policy._dm is not None and isinstance(policy._dm.fast, FastLM)


def test_a_bfloat16_model_keeps_transformers_forward_by_default() -> None:
    """In bfloat16 the fast forward's logprobs drift from a full forward's (about 0.05 on SmolLM2,
    transformers' about 0.005): 'auto' picks it only in float32; 'fast' still forces it."""
    model = tiny_model().to(torch.bfloat16)
    policy = HFPolicy.from_model(model, tiny_tokenizer())
    assert policy._dm is not None and policy._dm.fast is None
    forced = HFPolicy.from_model(model, tiny_tokenizer(), engine="fast")
    assert forced._dm is not None and isinstance(forced._dm.fast, FastLM)


@pytest.mark.parametrize("params", [GREEDY, SAMPLED])
def test_fast_engine_generates_what_transformers_generates(params: SamplingParams) -> None:
    hf, fast = _pair(engine="fast")
    a, b = hf.generate(PROMPTS, params), fast.generate(PROMPTS, params)
    for x, y in zip(a, b, strict=True):
        assert x.token_ids == y.token_ids
        assert x.logprobs == pytest.approx(y.logprobs, abs=1e-4)


def test_fast_engine_with_a_prefix_cache_matches_a_cold_call() -> None:
    model = tiny_model(seed=5, hidden=64, layers=2).to(torch.float32)
    cached = HFPolicy.from_model(model, tiny_tokenizer(), prefix_cache_mb=64)
    cold = HFPolicy.from_model(model, tiny_tokenizer(), engine="hf")
    [first] = cached.generate([PROMPTS[1]], GREEDY)
    follow = PROMPTS[1] + first.text + "\nmore"
    [warm] = cached.generate([follow, PROMPTS[0]], GREEDY)[:1]
    [ref] = cold.generate([follow], GREEDY)
    assert warm.token_ids == ref.token_ids
    assert warm.logprobs == pytest.approx(ref.logprobs, abs=1e-4)


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_a_changed_weight_changes_the_generated_logprobs(quantize: str) -> None:
    if quantize == "int8" and not int8_available():
        pytest.skip("no quantised linear kernels in this PyTorch")
    model = tiny_model(seed=5, hidden=64, layers=2).to(torch.float32)
    policy = HFPolicy.from_model(model, tiny_tokenizer(), quantize=quantize)
    [before] = policy.generate([PROMPTS[0]], GREEDY)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()  # in place, as a trainer's optimizer does
    assert (policy.refresh_weights() > 0) is (quantize == "int8")  # only int8 copies need work
    assert policy.refresh_weights() == 0
    [after] = policy.generate([PROMPTS[0]], GREEDY)
    n = min(len(before.logprobs), len(after.logprobs))
    assert before.logprobs[:n] != pytest.approx(after.logprobs[:n], abs=1e-3)


def test_int8_weights_stay_close_to_float() -> None:
    if not int8_available():
        pytest.skip("no quantised linear kernels in this PyTorch")
    hf, q = _pair(quantize="int8")
    a, b = hf.generate(PROMPTS[:1], GREEDY), q.generate(PROMPTS[:1], GREEDY)
    # the first token is scored on the same prompt by both: its logprob is close, not equal
    assert a[0].logprobs[0] == pytest.approx(b[0].logprobs[0], abs=0.5)
    assert q._int8 is not None and q._int8.refresh() == 0  # nothing changed since the last call


def test_bad_engine_settings_are_refused() -> None:
    model, tok = tiny_model(), tiny_tokenizer()
    with pytest.raises(PolicyError, match="int8"):
        HFPolicy.from_model(model, tok, engine="hf", quantize="int8")
    with pytest.raises(PolicyError, match="unknown engine"):
        HFPolicy.from_model(model, tok, engine="turbo")


def test_unsupported_models_fall_back_or_are_refused() -> None:
    class Other(torch.nn.Module):
        config = None

    assert not FastLM.supports(Other())
    with pytest.raises(ValueError, match="does not support"):
        FastLM(Other())


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    past=st.integers(0, 3),
    s=st.integers(1, 4),
)
def test_every_query_row_of_the_mask_sees_at_least_itself(
    lengths: list[int], past: int, s: int
) -> None:
    width = past + s
    keep = torch.zeros(len(lengths), width, dtype=torch.bool)
    for i, n in enumerate(lengths):
        keep[i, max(0, width - n) :] = True  # left padded
    mask = _attention_mask(keep, past, s)
    assert mask.shape[-1] == width and bool(mask.any(dim=-1).all())
    if s > 1:  # causal: no query sees a later column
        cols = torch.arange(width)
        rows = past + torch.arange(s)
        assert not bool((mask & (cols[None, :] > rows[:, None])).any())
