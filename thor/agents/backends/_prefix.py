"""A prefix cache for the HF decode loop: the KV states of earlier calls, reused by later ones.

Multi-turn work sends the model its own text back. The TIR loop continues a transcript after each
tool output, self-correction regenerates from a prefix of a transcript, TIRGen continues the actor
after each critic rewrite. Without a cache, every call prefills the whole transcript again, which
on a CPU costs as much as the decoding itself. vLLM does this with its automatic prefix caching;
this is the same idea for the hand-written loop in :mod:`thor.agents.backends._decode`.

Each finished row leaves one entry: its token ids (prompt and the tokens fed after it) and, per
layer, its keys and values with the padding cut off. A new prompt looks for the entry sharing its
longest prefix and is prefilled only from there. Entries live on the model's device, in its dtype,
and are evicted least recently used first to stay within a byte budget; an entry that another
one extends is dropped.

The cache is emptied when the weights change: every call compares a fingerprint of the
parameters (their storage and PyTorch's in-place version counters), so an optimizer step on the
wrapped module, or ``load_state_dict``, invalidates it.

Example:
    >>> import torch
    >>> cache = PrefixCache(max_bytes=1 << 20, min_tokens=2)
    >>> kv = [(torch.zeros(1, 4, 2), torch.zeros(1, 4, 2))]  # one layer, 4 tokens
    >>> cache.store([1, 2, 3, 4], kv)
    >>> entry, n = cache.match([1, 2, 3, 9, 9])
    >>> n, entry.length
    (3, 4)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["CacheEntry", "PrefixCache", "PrefixCacheStats"]

KV = list[tuple[torch.Tensor, torch.Tensor]]
"""Per layer, keys and values of one sequence: ``[kv_heads, tokens, head_dim]`` each."""


@dataclass
class CacheEntry:
    """One stored sequence: its token ids and its per-layer keys and values."""

    ids: np.ndarray
    kv: KV
    nbytes: int

    @property
    def length(self) -> int:
        return len(self.ids)


@dataclass
class PrefixCacheStats:
    """Counters since the cache was made (not reset by :meth:`PrefixCache.clear`)."""

    lookups: int = 0
    hits: int = 0
    prompt_tokens: int = 0
    reused_tokens: int = 0
    stored: int = 0
    evicted: int = 0
    invalidations: int = 0

    @property
    def reused_fraction(self) -> float:
        """Share of the prompt tokens looked up that were not prefilled again."""
        return self.reused_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@dataclass
class PrefixCache:
    """Keys and values of earlier sequences, looked up by longest common prefix.

    Args:
        max_bytes: the budget for all entries together; least recently used ones go first.
        min_tokens: shorter matches are not worth assembling a cache for and count as misses.
    """

    max_bytes: int
    min_tokens: int = 16
    stats: PrefixCacheStats = field(default_factory=PrefixCacheStats)
    _entries: OrderedDict[int, CacheEntry] = field(default_factory=OrderedDict, repr=False)
    _bytes: int = field(default=0, repr=False)
    _next: int = field(default=0, repr=False)
    _weights: int | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.max_bytes < 0 or self.min_tokens < 1:
            raise ValueError("PrefixCache needs max_bytes >= 0 and min_tokens >= 1")

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes held by the entries now."""
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def check_weights(self, model: Any) -> None:
        """Empty the cache if ``model``'s parameters changed since the last call."""
        fingerprint = hash(tuple((p.data_ptr(), p._version) for p in model.parameters()))
        if self._weights is not None and fingerprint != self._weights:
            self.stats.invalidations += 1
            self.clear()
        self._weights = fingerprint

    def match(self, prompt: Sequence[int]) -> tuple[CacheEntry | None, int]:
        """The entry sharing the longest prefix with ``prompt``, and how many tokens to reuse.

        At most ``len(prompt) - 1`` tokens are reused (the model must see one token to produce the
        next logits); a match shorter than ``min_tokens`` is ``(None, 0)``.
        """
        ids = np.asarray(prompt, dtype=np.int64)
        best: tuple[int, int] | None = None  # (length, key)
        with self._lock:
            self.stats.lookups += 1
            self.stats.prompt_tokens += len(ids)
            for key, entry in self._entries.items():
                n = _common_prefix(entry.ids, ids)
                if best is None or n > best[0]:
                    best = (n, key)
            if best is None:
                return None, 0
            n = min(best[0], len(ids) - 1)
            if n < self.min_tokens:
                return None, 0
            self._entries.move_to_end(best[1])
            self.stats.hits += 1
            self.stats.reused_tokens += n
            return self._entries[best[1]], n

    def store(self, ids: Sequence[int], kv: KV) -> None:
        """Keep ``kv`` (one tensor pair per layer, ``len(ids)`` tokens each) for ``ids``."""
        if any(k.shape[-2] != len(ids) or v.shape[-2] != len(ids) for k, v in kv):
            raise ValueError(f"the keys and values do not cover the {len(ids)} tokens")
        arr = np.asarray(ids, dtype=np.int64)
        nbytes = sum(k.nbytes + v.nbytes for k, v in kv)
        if len(arr) < self.min_tokens or nbytes > self.max_bytes:
            return
        with self._lock:
            for key, entry in list(self._entries.items()):
                n = _common_prefix(entry.ids, arr)
                if n == len(arr):  # an entry already holds this sequence (or extends it)
                    self._entries.move_to_end(key)
                    return
                if n == entry.length:  # the new sequence extends this entry
                    self._drop(key)
            while self._entries and self._bytes + nbytes > self.max_bytes:
                self._drop(next(iter(self._entries)))
                self.stats.evicted += 1
            self._entries[self._next] = CacheEntry(arr, kv, nbytes)
            self._next += 1
            self._bytes += nbytes
            self.stats.stored += 1

    def _drop(self, key: int) -> None:
        self._bytes -= self._entries.pop(key).nbytes


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n
