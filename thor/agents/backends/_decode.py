"""The batched decode loop of the HF backend: left padding, a KV cache, per-row stops, early exit.

Written by hand rather than through ``model.generate`` because it was faster here (see
benchmarks/backends.py) and because it can do what ``generate`` cannot:

- identical prompts (a GRPO group) are prefilled once and their cache rows copied;
- with a :class:`~thor.agents.backends._prefix.PrefixCache`, a prompt that extends an earlier
  call's sequence (the next turn of a transcript) is prefilled only from where they part;
- finished rows leave the batch (the cache is compacted), so a batch of episodes at different
  lengths does not pay for its finished members, and padding columns that no remaining row needs
  are dropped;
- every row samples from its own seeded generator, so a row's tokens do not depend on which
  other rows share its batch (up to floating-point effects of padding);
- logprobs are those of the temperature-scaled distribution before top-p / top-k truncation.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from thor.agents.backends._prefix import KV, CacheEntry, PrefixCache
from thor.agents.backends.base import Decode, StopChecker, TickTokens
from thor.types import SamplingParams

__all__ = ["DecodeModel", "decode_batch", "sample_tokens"]


@dataclass
class DecodeModel:
    """A causal LM and what the loop needs to drive it.

    ``vocab_size``: the tokenizer's; with it, stop checks decode text only at tokens that may
    hold a backtick (:class:`~thor.agents.backends.base.TickTokens`, built on first use).
    ``prefix``: the prefix cache shared by this model's calls, or None for none.
    """

    model: Any
    pad_id: int
    eos_ids: frozenset[int]
    decode: Decode
    max_len: int
    vocab_size: int | None = None
    prefix: PrefixCache | None = None
    fast: Any = None
    """A :class:`~thor.agents.backends._fastlm.FastLM` over ``model`` to run instead of it, or None."""
    cache_kwarg: str = field(init=False)
    _ticks: TickTokens | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.cache_kwarg = _cache_kwarg(self.model)

    @property
    def tick_tokens(self) -> TickTokens | None:
        if self._ticks is None and self.vocab_size:
            self._ticks = TickTokens(self.decode, self.vocab_size)
        return self._ticks

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def _cache_kwarg(model: Any) -> str:
    """transformers >= 5.2x calls the KV cache argument ``cache``; older releases ``past_key_values``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


_UNIFORM_CHUNK = 256
"""Uniform numbers drawn per row at a time (one per sampled token)."""


@dataclass
class _Row:
    index: int
    prompt: list[int]
    checker: StopChecker
    generator: torch.Generator
    logprobs: list[float] = field(default_factory=list)
    fed: list[int] = field(default_factory=list)
    """Tokens fed to the model after the prompt (the cache holds their keys and values)."""


class _Uniforms:
    """Each row's stream of uniform numbers, drawn from its own generator in chunks.

    One draw of a chunk per row every ``_UNIFORM_CHUNK`` tokens, moved to the device at once,
    instead of a draw and a host-to-device copy per row per token.
    """

    def __init__(self, rows: Sequence[_Row], device: torch.device) -> None:
        self.device = device
        self.step = 0
        self.chunk = self._draw(rows)

    def _draw(self, rows: Sequence[_Row]) -> torch.Tensor:
        chunk = torch.stack([torch.rand(_UNIFORM_CHUNK, generator=r.generator) for r in rows])
        return chunk.to(self.device)

    def next(self, rows: Sequence[_Row]) -> torch.Tensor:
        """The next number of every row of ``rows`` (the rows now in the batch, in order)."""
        col = self.step % _UNIFORM_CHUNK
        if col == 0 and self.step:
            self.chunk = self._draw(rows)
        self.step += 1
        return self.chunk[:, col]

    def select(self, idx: torch.Tensor) -> None:
        self.chunk = self.chunk[idx]


def sample_tokens(
    logits: torch.Tensor, params: SamplingParams, uniforms: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row; return the tokens and their logprobs.

    The logprob is taken under ``log_softmax(logits / T)`` (T = 0 counts as 1) before top-k / top-p
    truncation. Sampling inverts the truncated distribution's CDF at ``uniforms`` (one number in
    [0, 1) per row, from that row's own generator), so it is reproducible row by row; greedy
    decoding (T = 0) needs none.
    """
    logits = logits.float()
    temp = params.temperature if params.temperature > 0 else 1.0
    scaled = logits / temp if temp != 1.0 else logits
    logp = torch.log_softmax(scaled, dim=-1)
    if params.temperature == 0:
        tokens = torch.argmax(logits, dim=-1)
    else:
        if uniforms is None:
            raise ValueError("sampling at a temperature above 0 needs one uniform number per row")
        filtered = _truncate(scaled, params.top_k, params.top_p)
        # without truncation the distribution is the one whose logprobs were just computed
        probs = logp.exp() if filtered is scaled else torch.softmax(filtered, dim=-1)
        cdf = torch.cumsum(probs, dim=-1)
        u = uniforms.to(cdf.dtype)
        target = (u * cdf[:, -1]).unsqueeze(-1)
        tokens = (
            torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp_(max=cdf.shape[-1] - 1)
        )
    return tokens, logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def _truncate(scaled: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    if top_k > 0 and top_k < scaled.shape[-1]:
        kth = torch.topk(scaled, top_k, dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(scaled, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        drop = (torch.cumsum(probs, dim=-1) - probs) > top_p  # keep the smallest set reaching top_p
        drop[:, 0] = False
        scaled = scaled.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return scaled


@torch.inference_mode()
def decode_batch(
    dm: DecodeModel, prompts: Sequence[list[int]], params: SamplingParams, seeds: Sequence[int]
) -> list[tuple[list[int], list[float], str]]:
    """Generate one completion per prompt; return ``(kept ids, logprobs, finish reason)`` per row."""
    rows = [
        _Row(
            i,
            list(p),
            StopChecker(
                dm.decode,
                params,
                dm.eos_ids,
                max_tokens=min(params.max_tokens, dm.max_len - len(p)),
                tick_tokens=dm.tick_tokens if params.stop_at_code_close else None,
            ),
            torch.Generator().manual_seed(int(seeds[i]) % (1 << 63)),
        )
        for i, p in enumerate(prompts)
    ]
    live = [
        r for r in rows if not r.checker.done
    ]  # a prompt that fills the context: empty, "length"
    if live:
        if dm.prefix is not None:
            dm.prefix.check_weights(dm.model)
        _run(dm, live, params)
    return [(list(r.checker.ids), r.logprobs, r.checker.finish_reason or "length") for r in rows]


def _prefill(
    dm: DecodeModel, rows: list[_Row]
) -> tuple[list[_Row], Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prefill every row's prompt; return the rows in cache order, the cache, last logits, mask, next positions.

    Without a prefix cache hit, all rows are one left-padded batch. Otherwise each prompt needs only
    its part after its cached prefix; a batch feeds every row as many tokens as its longest such
    part, so rows are grouped by that length (:func:`_group_by_suffix`), each group prefilled on
    its own and the caches joined (left padded to one width).
    """
    hits = [dm.prefix.match(r.prompt) for r in rows] if dm.prefix is not None else []
    if not any(n for _, n in hits):  # no cache, or nothing in it (e.g. not a plain KV cache)
        return (rows, *_prefill_group(dm, [r.prompt for r in rows], [(None, 0)] * len(rows)))
    overhead = _CALL_TOKENS_CPU if dm.device.type == "cpu" else _CALL_TOKENS_GPU
    groups = _group_by_suffix([tuple(r.prompt) for r in rows], [n for _, n in hits], overhead)
    parts = [
        _prefill_group(dm, [rows[i].prompt for i in group], [hits[i] for i in group])
        for group in groups
    ]
    order = [rows[i] for group in groups for i in group]
    if len(parts) == 1:
        return (order, *parts[0])
    return (order, *_join(parts))


_CALL_TOKENS_CPU = 32
_CALL_TOKENS_GPU = 1024
"""What one more model call costs, in prefilled tokens (a GPU prefills hundreds at the price of one)."""


def _group_by_suffix(
    prompts: Sequence[tuple[int, ...]], reused: Sequence[int], overhead: int
) -> list[list[int]]:
    """Split rows into prefill groups that minimise tokens fed plus ``overhead`` per group.

    A group feeds each of its distinct prompts as many tokens as its longest uncached part, so the
    distinct prompts are sorted by that length and cut into runs by dynamic programming (an
    optimal partition into consecutive runs). Identical prompts stay together (prefilled once).

    >>> _group_by_suffix([(1, 2, 3), (1, 2, 3, 4, 5, 6, 7, 8)], [2, 0], overhead=1)
    [[0], [1]]
    >>> _group_by_suffix([(1, 2, 3), (1, 2, 3, 4, 5, 6, 7, 8)], [2, 0], overhead=100)
    [[0, 1]]
    """
    rows_of: dict[tuple[int, ...], list[int]] = {}
    need: dict[tuple[int, ...], int] = {}
    for i, (p, n) in enumerate(zip(prompts, reused, strict=True)):
        rows_of.setdefault(p, []).append(i)
        need[p] = len(p) - n
    keys = sorted(rows_of, key=need.__getitem__)
    sizes = [need[k] for k in keys]
    best = [0] * (len(keys) + 1)  # best[j]: cost of the first j prompts
    cut = [0] * (len(keys) + 1)
    for j in range(1, len(keys) + 1):
        best[j], cut[j] = min((best[i] + (j - i) * sizes[j - 1] + overhead, i) for i in range(j))
    groups: list[list[int]] = []
    j = len(keys)
    while j:
        groups.append([r for k in keys[cut[j] : j] for r in rows_of[k]])
        j = cut[j]
    return groups[::-1]


def _prefill_group(
    dm: DecodeModel, prompts: Sequence[list[int]], hits: Sequence[tuple[CacheEntry | None, int]]
) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the distinct prompts once, each from its cached prefix if any; one cache row per prompt.

    The input is the last ``S`` tokens of every prompt, ``S`` the longest part not cached; the
    tokens before them come from the cache (so a prompt reuses ``len - S`` of its cached tokens).
    Every row stays one contiguous run of real columns, left padded.
    """
    from transformers import DynamicCache

    unique: dict[tuple[int, ...], int] = {}
    row_map = [unique.setdefault(tuple(p), len(unique)) for p in prompts]
    firsts = {j: i for i, j in reversed(list(enumerate(row_map)))}
    distinct = [list(p) for p in unique]
    entries = [hits[firsts[j]][0] for j in range(len(distinct))]
    reuse = [hits[firsts[j]][1] for j in range(len(distinct))]
    width = max(len(p) - n for p, n in zip(distinct, reuse, strict=True))
    used = [max(len(p) - width, 0) for p in distinct]
    past = max(used)
    n_rows = len(distinct)
    ids = torch.full((n_rows, width), dm.pad_id, dtype=torch.long)
    mask = torch.zeros((n_rows, past + width), dtype=torch.long)
    pos = torch.zeros((n_rows, width), dtype=torch.long)
    for j, (p, u) in enumerate(zip(distinct, used, strict=True)):
        tail = p[u:]
        ids[j, width - len(tail) :] = torch.tensor(tail, dtype=torch.long)
        pos[j, width - len(tail) :] = torch.arange(u, len(p))
        mask[j, past - u : past] = 1  # cached tokens
        mask[j, past + width - len(tail) :] = 1  # then the input (u > 0: no padding in between)
    dev = dm.device
    cache = DynamicCache(ddp_cache_data=_assemble(entries, used, past)) if past else DynamicCache()
    out = _forward(dm, ids.to(dev), mask.to(dev), pos.to(dev), cache, keep=1)
    idx = torch.tensor(row_map, dtype=torch.long)
    if row_map != list(range(n_rows)):
        cache.batch_select_indices(idx.to(dev))
    return cache, out.logits[idx.to(dev), -1], mask[idx].to(dev), pos[idx, -1].to(dev) + 1


def _forward(
    dm: DecodeModel, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any, keep: int
) -> Any:
    """One model call on the cache (through ``dm.fast`` when set); ``keep``: logits kept, 0 = all."""
    if dm.fast is not None:
        return dm.fast(ids, mask, pos, cache, logits_to_keep=keep)
    return dm.model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=pos,
        use_cache=True,
        logits_to_keep=keep,
        **{dm.cache_kwarg: cache},
    )


def _assemble(entries: Sequence[CacheEntry | None], used: Sequence[int], width: int) -> KV:
    """A batch's past keys and values: the first ``used[j]`` cached tokens of row ``j``, left padded."""
    first = next(e for e in entries if e is not None)
    out: KV = []
    for layer, (k0, v0) in enumerate(first.kv):
        keys = k0.new_zeros((len(entries), k0.shape[0], width, k0.shape[-1]))
        values = v0.new_zeros((len(entries), v0.shape[0], width, v0.shape[-1]))
        for j, (entry, u) in enumerate(zip(entries, used, strict=True)):
            if entry is not None and u:
                k, v = entry.kv[layer]
                keys[j, :, width - u :] = k[:, :u]
                values[j, :, width - u :] = v[:, :u]
        out.append((keys, values))
    return out


def _join(
    parts: Sequence[tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]],
) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack prefilled groups into one batch, left padding the narrower caches and masks."""
    from transformers import DynamicCache

    width = max(mask.shape[1] for _, _, mask, _ in parts)
    maybe = [_plain_layers(cache) for cache, _, _, _ in parts]
    layers = [ls for ls in maybe if ls is not None]
    if len(layers) != len(parts):
        raise RuntimeError("a prefix-cached prefill needs a plain full-attention cache")
    joined: KV = []
    for i in range(len(layers[0])):
        keys, values = [], []
        for ls, (_, _, mask, _) in zip(layers, parts, strict=True):
            x = ls[i]
            pad = width - mask.shape[1]
            keys.append(torch.nn.functional.pad(x.keys, (0, 0, pad, 0)))
            values.append(torch.nn.functional.pad(x.values, (0, 0, pad, 0)))
        joined.append((torch.cat(keys), torch.cat(values)))
    masks = [torch.nn.functional.pad(m, (width - m.shape[1], 0)) for _, _, m, _ in parts]
    return (
        DynamicCache(ddp_cache_data=joined),
        torch.cat([logits for _, logits, _, _ in parts]),
        torch.cat(masks),
        torch.cat([p for _, _, _, p in parts]),
    )


def _plain_layers(cache: Any) -> list[Any] | None:
    """The cache's layers if every one is a plain full-attention ``[batch, heads, seq, dim]`` cache."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers or any(type(x) is not DynamicLayer for x in layers):
        return None
    if any(not isinstance(x.keys, torch.Tensor) or x.keys.dim() != 4 for x in layers):
        return None
    return list(layers)


def _store(
    dm: DecodeModel, cache: Any, mask: torch.Tensor, batch: list[_Row], which: Sequence[int]
) -> None:
    """Keep the keys and values of rows ``which`` in the prefix cache (padding cut off)."""
    layers = _plain_layers(cache) if dm.prefix is not None else None
    if dm.prefix is None or layers is None or layers[0].keys.shape[-2] != mask.shape[1]:
        return
    lead = mask.argmax(dim=1).tolist()  # first real column of each row
    for j in which:
        r, s = batch[j], int(lead[j])
        kv = [(x.keys[j, :, s:].clone(), x.values[j, :, s:].clone()) for x in layers]
        dm.prefix.store(r.prompt + r.fed, kv)


def _run(dm: DecodeModel, rows: list[_Row], params: SamplingParams) -> None:
    batch, cache, logits, mask, next_pos = _prefill(dm, rows)  # batch: the row of each cache line
    dev = dm.device
    uniforms = _Uniforms(batch, dev) if params.temperature > 0 else None
    while True:
        u = uniforms.next(batch) if uniforms is not None else None
        tokens, logps = sample_tokens(logits, params, u)
        # one device-to-host copy for both (float32 holds token ids exactly up to 2**24)
        host = torch.stack([tokens.to(logps.dtype), logps]).tolist()
        for r, tok, lp in zip(batch, host[0], host[1], strict=True):
            if r.checker.done:
                continue
            if r.checker.push(int(tok)) != "eos":
                r.logprobs.append(lp)
        fed = [int(t) for t in host[0]]
        alive = [j for j, r in enumerate(batch) if not r.checker.done]
        if not alive:
            _store(dm, cache, mask, batch, range(len(batch)))
            return
        dead = len(batch) - len(alive)
        if dead and dead >= max(1, len(batch) // 4):
            _store(dm, cache, mask, batch, [j for j, r in enumerate(batch) if r.checker.done])
            idx = torch.tensor(alive, dtype=torch.long, device=dev)
            cache.batch_select_indices(idx)
            batch = [batch[j] for j in alive]
            fed = [fed[j] for j in alive]
            tokens, mask, next_pos = tokens[idx], mask[idx], next_pos[idx]
            if uniforms is not None:
                uniforms.select(idx)
            mask = _trim_left(cache, mask)
        for r, tok in zip(batch, fed, strict=True):
            r.fed.append(tok)
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        out = _forward(dm, tokens.unsqueeze(-1), mask, next_pos.unsqueeze(-1), cache, keep=0)
        logits = out.logits[:, -1]
        next_pos = next_pos + 1


def _trim_left(cache: Any, mask: torch.Tensor) -> torch.Tensor:
    """Drop leading padding columns that no remaining row attends to (positions are explicit)."""
    lead = int(mask.argmax(dim=1).min())  # first real token of the least padded row
    layers = _plain_layers(cache)
    if lead <= 0 or layers is None or any(x.keys.shape[-2] != mask.shape[1] for x in layers):
        return mask
    for x in layers:
        x.keys = x.keys[:, :, lead:]
        x.values = x.values[:, :, lead:]
    return mask[:, lead:]
