"""The HF backend's prefix cache: later turns reuse earlier calls' keys and values, and change nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thor.agents.backends._prefix import PrefixCache
from thor.agents.backends.hf import HFPolicy, HFPolicyConfig
from thor.testing import tiny_model, tiny_tokenizer
from thor.types import Completion, SamplingParams

PROMPTS = [
    "x = 1, and then we go on and on with the reasoning about x",
    "What is 2+2? Let me think about it carefully, step by step.",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
]
TOOL_OUTPUT = "\n```output\n42\n```\n"


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return tiny_model(seed=3, hidden=64, layers=2).to(torch.float32)


def _policies(model: torch.nn.Module, mb: int = 64) -> tuple[HFPolicy, HFPolicy]:
    tok = tiny_tokenizer()
    return HFPolicy.from_model(model, tok, prefix_cache_mb=mb), HFPolicy.from_model(model, tok)


def _same(a: list[Completion], b: list[Completion]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.token_ids == y.token_ids
        assert x.finish_reason == y.finish_reason
        assert x.logprobs == pytest.approx(y.logprobs, abs=1e-4)


def _turns(
    cached: HFPolicy, plain: HFPolicy, params: SamplingParams, turns: int = 3
) -> list[list[int]]:
    """Multi-turn transcripts (completion + a tool output appended each turn), a new prompt
    joining at turn 2 and a repeated one throughout; both policies must agree at every turn."""
    out = cached.encode(TOOL_OUTPUT)
    ctx = [cached.encode(p) for p in PROMPTS]
    for turn in range(turns):
        batch = [*ctx, ctx[0]]
        a, b = cached.generate(batch, params), plain.generate(batch, params)
        _same(a, b)
        ctx = [c + x.token_ids + out for c, x in zip(ctx, a, strict=False)]
        if turn == 1:
            ctx.append(cached.encode("a brand new problem that nobody has seen " * 3))
    return ctx


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_later_turns_reuse_the_cache_and_generate_the_same(
    model: torch.nn.Module, temperature: float
) -> None:
    cached, plain = _policies(model)
    _turns(cached, plain, SamplingParams(max_tokens=16, temperature=temperature, seed=5))
    stats = cached.prefix_cache.stats  # type: ignore[union-attr]
    assert stats.hits >= 2 * len(PROMPTS)  # turns 2 and 3 of every transcript
    assert stats.reused_fraction > 0.5
    assert plain.prefix_cache is None


def test_a_prefix_of_a_cached_sequence_hits(model: torch.nn.Module) -> None:
    """Self-correction regenerates from a branch point inside an earlier transcript."""
    cached, plain = _policies(model)
    params = SamplingParams(max_tokens=24, temperature=0.0)
    [first] = cached.generate([PROMPTS[1]], params)
    branch = cached.encode(PROMPTS[1]) + first.token_ids[:10]
    before = cached.prefix_cache.stats.reused_tokens  # type: ignore[union-attr]
    _same(cached.generate([branch], params), plain.generate([branch], params))
    reused = cached.prefix_cache.stats.reused_tokens - before  # type: ignore[union-attr]
    assert reused == len(branch) - 1


def test_changing_the_weights_empties_the_cache(model: torch.nn.Module) -> None:
    trained = tiny_model(seed=3, hidden=64, layers=2).to(torch.float32)
    cached, plain = _policies(trained)
    params = SamplingParams(max_tokens=12, temperature=0.0)
    cached.generate(PROMPTS, params)
    assert len(cached.prefix_cache) == len(PROMPTS)  # type: ignore[arg-type]
    with torch.no_grad():  # what an optimizer step does
        next(trained.parameters()).mul_(1.5)
    _same(cached.generate(PROMPTS, params), plain.generate(PROMPTS, params))
    stats = cached.prefix_cache.stats  # type: ignore[union-attr]
    assert stats.invalidations == 1 and stats.hits == 0


def test_the_budget_holds_and_a_too_large_sequence_is_not_kept(model: torch.nn.Module) -> None:
    tok = tiny_tokenizer()
    policy = HFPolicy.from_model(model, tok, prefix_cache_mb=1)
    cache = policy.prefix_cache
    assert cache is not None
    params = SamplingParams(max_tokens=16, temperature=1.0, seed=0)
    for i in range(40):
        policy.generate([f"problem {i}: " + "tokens " * 60], params)
        assert cache.nbytes <= cache.max_bytes
    assert cache.stats.evicted > 0
    small = PrefixCache(max_bytes=100, min_tokens=1)
    small.store([1, 2, 3], [(torch.zeros(1, 3, 8), torch.zeros(1, 3, 8))])  # 192 bytes
    assert len(small) == 0


def test_the_config_turns_it_on_and_off() -> None:
    assert HFPolicyConfig().prefix_cache_mb == 4096
    with pytest.raises(ValueError):
        HFPolicyConfig(prefix_cache_mb=-1)


def test_store_rejects_keys_that_do_not_cover_the_tokens() -> None:
    cache = PrefixCache(max_bytes=1 << 20, min_tokens=1)
    with pytest.raises(ValueError, match="do not cover"):
        cache.store([1, 2, 3], [(torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))])


def _kv(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.zeros(1, n, 2), torch.zeros(1, n, 2))]


seqs = st.lists(st.integers(0, 3), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(stored=st.lists(seqs, max_size=8), prompt=seqs, budget=st.integers(0, 1200))
def test_match_is_the_longest_common_prefix_within_the_budget(
    stored: list[list[int]], prompt: list[int], budget: int
) -> None:
    cache = PrefixCache(max_bytes=budget, min_tokens=1)
    for ids in stored:
        cache.store(ids, _kv(len(ids)))
        assert cache.nbytes <= budget
        assert cache.nbytes == sum(e.nbytes for e in cache._entries.values())
    kept = [e.ids.tolist() for e in cache._entries.values()]
    for a in kept:  # no entry is a prefix of another
        assert not any(a != b and b[: len(a)] == a for b in kept)
    entry, n = cache.match(prompt)

    def lcp(a: list[int]) -> int:
        return next(
            (i for i, (x, y) in enumerate(zip(a, prompt, strict=False)) if x != y),
            min(len(a), len(prompt)),
        )

    best = max((lcp(a) for a in kept), default=0)
    assert n == (min(best, len(prompt) - 1) if min(best, len(prompt) - 1) >= 1 else 0)
    if entry is not None:
        assert np.array_equal(entry.ids[:n], np.asarray(prompt[:n]))


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(1, 4), st.integers(1, 40), st.integers(0, 39)), max_size=12
    ),
    overhead=st.integers(0, 64),
)
def test_prefill_groups_partition_the_rows_and_cost_no_more_than_one_batch(
    rows: list[tuple[int, int, int]], overhead: int
) -> None:
    from thor.agents.backends._decode import _group_by_suffix

    prompts = [tuple([kind] * length) for kind, length, _ in rows]
    reused = [min(r, len(p) - 1) for (_, _, r), p in zip(rows, prompts, strict=True)]
    reused = [  # identical prompts get identical hits, as PrefixCache.match gives them
        reused[prompts.index(p)] for p in prompts
    ]
    groups = _group_by_suffix(prompts, reused, overhead)
    assert sorted(i for g in groups for i in g) == list(range(len(rows)))
    where = {i: gi for gi, g in enumerate(groups) for i in g}
    for i, p in enumerate(prompts):
        assert where[i] == where[prompts.index(p)]  # identical prompts prefilled together

    def cost(group: list[int]) -> int:
        distinct = {prompts[i]: len(prompts[i]) - reused[i] for i in group}
        return len(distinct) * max(distinct.values()) + overhead

    if rows:
        assert sum(cost(g) for g in groups) <= cost(list(range(len(rows))))
