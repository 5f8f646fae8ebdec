"""Cutting a turn back to before its tool call: shared by self-correction and step-level RL.

Token ids are the record of truth, so cuts are made in token space: the kept prefix is a prefix of
the turn's own token ids (never a re-tokenisation of its text).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from thor.text.protocol import find_code_blocks
from thor.types import Turn

__all__ = ["TurnPrefix", "cut_before_call", "tokens_before_offset"]

Decode = Callable[[Sequence[int]], str]


@dataclass(frozen=True)
class TurnPrefix:
    """The kept start of a turn: token ids, their text and their sampling logprobs."""

    token_ids: list[int]
    text: str
    logprobs: list[float] | None
    dropped_tokens: int


def tokens_before_offset(ids: Sequence[int], text: str, offset: int, decode: Decode) -> int:
    """The largest ``k`` such that ``decode(ids[:k])`` is a prefix of ``text[:offset]``.

    ``text`` must be ``decode(ids)``. Binary search on decoded lengths, then a short walk back for
    tokens that split a multi-byte character.
    """
    lo, hi = 0, len(ids)
    while lo < hi:  # largest k with len(decode(ids[:k])) <= offset
        mid = (lo + hi + 1) // 2
        if len(decode(ids[:mid])) <= offset:
            lo = mid
        else:
            hi = mid - 1
    k = lo
    while k > 0 and not text[:offset].startswith(decode(ids[:k])):
        k -= 1
    return k


def cut_before_call(turn: Turn, drop_tokens: int, decode: Decode) -> TurnPrefix:
    """The turn's text before its (last) python fence, minus the last ``drop_tokens`` tokens.

    The cut never goes before the start of the turn (it never eats earlier turns or outputs).

    Raises:
        ValueError: the turn has no token ids, or no code block.
    """
    if turn.token_ids is None:
        raise ValueError("the turn has no token ids")
    blocks = find_code_blocks(turn.text)
    if not blocks:
        raise ValueError("the turn has no code block")
    k = tokens_before_offset(turn.token_ids, turn.text, blocks[-1].start, decode)
    keep = max(0, k - max(0, drop_tokens))
    ids = list(turn.token_ids[:keep])
    lps = list(turn.logprobs[:keep]) if turn.logprobs is not None else None
    return TurnPrefix(ids, decode(ids) if ids else "", lps, dropped_tokens=k - keep)
