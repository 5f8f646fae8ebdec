"""Degenerate repetition: THOR's rule that a long n-gram repeated too often zeroes the reward.

THOR-SPEC section 2: a trajectory in which some 50-character n-gram occurs more than 20 times
scores 0 (the TIRGen filter of section 1 uses 20-character n-grams). Occurrences are counted at
every offset, overlapping ones included, so a run of one repeated phrase fires as soon as its
period fits more than ``max_repeats`` times.

Counting every n-gram of a 20,000-character text hashes 20,000 slices: a few milliseconds.

Example:
    >>> has_repetition("I think " * 200)
    True
    >>> has_repetition("".join(chr(0x4E00 + i) for i in range(5000)))
    False
    >>> max_ngram_count("abcabcabc", n=3)
    3
"""

from __future__ import annotations

from collections import Counter

__all__ = ["has_repetition", "max_ngram_count"]


def max_ngram_count(text: str, n: int = 50) -> int:
    """How often the most frequent ``n``-character substring occurs (overlaps counted)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    if len(text) < n:
        return 0
    counts = Counter(
        map(text.__getitem__, map(slice, range(len(text) - n + 1), range(n, len(text) + 1)))
    )
    return max(counts.values())


def has_repetition(text: str, n: int = 50, max_repeats: int = 20) -> bool:
    """Whether some ``n``-character substring occurs more than ``max_repeats`` times in ``text``."""
    if max_repeats < 0:
        raise ValueError("max_repeats must be at least 0")
    if len(text) - n + 1 <= max_repeats:
        return False
    return max_ngram_count(text, n) > max_repeats
