"""The batched decode loop of the HF backend: left padding, a KV cache, per-row stops, early exit.

Written by hand rather than through ``model.generate`` because it was faster here (see
benchmarks/backends.py) and because it can do what ``generate`` cannot:

- identical prompts (a GRPO group) are prefilled once and their cache rows copied;
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

from thor.agents.backends.base import Decode, StopChecker, TickTokens
from thor.types import SamplingParams

__all__ = ["DecodeModel", "decode_batch", "sample_tokens"]


@dataclass
class DecodeModel:
    """A causal LM and what the loop needs to drive it.

    ``vocab_size``: the tokenizer's; with it, stop checks decode text only at tokens that may
    hold a backtick (:class:`~thor.agents.backends.base.TickTokens`, built on first use).
    """

    model: Any
    pad_id: int
    eos_ids: frozenset[int]
    decode: Decode
    max_len: int
    vocab_size: int | None = None
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
    checker: StopChecker
    generator: torch.Generator
    logprobs: list[float] = field(default_factory=list)


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
        _run(dm, [prompts[r.index] for r in live], live, params)
    return [(list(r.checker.ids), r.logprobs, r.checker.finish_reason or "length") for r in rows]


def _prefill(
    dm: DecodeModel, prompts: Sequence[list[int]]
) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the distinct prompts once (left padded); expand the cache to one row per prompt."""
    from transformers import DynamicCache

    unique: dict[tuple[int, ...], int] = {}
    row_map = [unique.setdefault(tuple(p), len(unique)) for p in prompts]
    distinct = list(unique)
    width = max(len(p) for p in distinct)
    ids = torch.full((len(distinct), width), dm.pad_id, dtype=torch.long)
    mask = torch.zeros((len(distinct), width), dtype=torch.long)
    for j, p in enumerate(distinct):
        ids[j, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[j, width - len(p) :] = 1
    pos = (mask.cumsum(-1) - 1).clamp_(min=0)
    cache = DynamicCache()
    dev = dm.device
    out = dm.model(
        input_ids=ids.to(dev),
        attention_mask=mask.to(dev),
        position_ids=pos.to(dev),
        use_cache=True,
        logits_to_keep=1,
        **{dm.cache_kwarg: cache},
    )
    idx = torch.tensor(row_map, dtype=torch.long)
    if row_map != list(range(len(distinct))):
        cache.batch_select_indices(idx.to(dev))
    return cache, out.logits[idx.to(dev), -1], mask[idx].to(dev), pos[idx, -1].to(dev) + 1


def _run(
    dm: DecodeModel, prompts: Sequence[list[int]], rows: list[_Row], params: SamplingParams
) -> None:
    cache, logits, mask, next_pos = _prefill(dm, prompts)
    dev = dm.device
    batch = list(rows)  # the row each line of the cache belongs to
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
        alive = [j for j, r in enumerate(batch) if not r.checker.done]
        if not alive:
            return
        dead = len(batch) - len(alive)
        if dead and dead >= max(1, len(batch) // 4):
            idx = torch.tensor(alive, dtype=torch.long, device=dev)
            cache.batch_select_indices(idx)
            batch = [batch[j] for j in alive]
            tokens, mask, next_pos = tokens[idx], mask[idx], next_pos[idx]
            if uniforms is not None:
                uniforms.select(idx)
            mask = _trim_left(cache, mask)
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        out = dm.model(
            input_ids=tokens.unsqueeze(-1),
            attention_mask=mask,
            position_ids=next_pos.unsqueeze(-1),
            use_cache=True,
            **{dm.cache_kwarg: cache},
        )
        logits = out.logits[:, -1]
        next_pos = next_pos + 1


def _trim_left(cache: Any, mask: torch.Tensor) -> torch.Tensor:
    """Drop leading padding columns that no remaining row attends to (positions are explicit)."""
    lead = int(mask.argmax(dim=1).min())  # first real token of the least padded row
    layers = getattr(cache, "layers", None)
    if (
        lead <= 0
        or not layers
        or not all(hasattr(x, "keys") and hasattr(x, "values") for x in layers)
    ):
        return mask
    if any(not isinstance(x.keys, torch.Tensor) or x.keys.dim() != 4 for x in layers):
        return mask
    if any(x.keys.shape[-2] != mask.shape[1] for x in layers):  # not a plain full-attention cache
        return mask
    for x in layers:
        x.keys = x.keys[:, :, lead:]
        x.values = x.values[:, :, lead:]
    return mask[:, lead:]
