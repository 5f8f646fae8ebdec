"""A gymnasium Text space for real prompts: any Unicode, newlines, LaTeX, up to a length."""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.spaces import Text
from gymnasium.vector.utils.shared_memory import read_from_shared_memory, write_to_shared_memory

__all__ = ["UnicodeText"]

# What sample() draws from; contains() accepts any character.
_SAMPLE_CHARSET = string.ascii_letters + string.digits + " \n\\{}()[]^_=+-*/.,:;$`'\"" + "πθ√∞≤≥αβ"


class UnicodeText(Text):
    """Text of any Unicode characters with ``min_length <= len <= max_length``.

    gymnasium's Text checks every character against a finite charset; model output is arbitrary
    Unicode, so this space accepts any ``str`` and samples from a LaTeX-flavoured alphabet.

    Example:
        >>> UnicodeText(100).contains("Soit $x = \\\\frac{π}{2}$\\n")
        True
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: Any = None) -> None:
        super().__init__(max_length, min_length=min_length, charset=_SAMPLE_CHARSET, seed=seed)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random short text (at most 256 characters: a sampled 4-Mi-character action is useless)."""
        if mask is not None or probability is not None:
            return super().sample(mask=mask, probability=probability)
        n = int(self.np_random.integers(self.min_length, min(self.max_length, 256) + 1))
        return "".join(self.np_random.choice(list(self.character_set), size=n)) if n else ""

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, UnicodeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )


# Async vector envs pass observations through shared memory; gymnasium's Text encoding only knows
# its finite charset, so UnicodeText stores code points + 1 (0 is padding) instead.
@write_to_shared_memory.register(UnicodeText)
def _write_unicode_text(space: UnicodeText, index: int, values: str, shared_memory: Any) -> None:
    size = space.max_length
    dest = np.frombuffer(shared_memory.get_obj(), dtype=np.int32)
    codes = np.fromiter((ord(c) + 1 for c in values), dtype=np.int32, count=len(values))
    row = dest[index * size : (index + 1) * size]
    row[: len(codes)] = codes
    row[len(codes) :] = 0


class _SharedTexts(Sequence[str]):
    """A live view of texts in shared memory (gymnasium reads its buffer once and keeps the view)."""

    def __init__(self, data: np.ndarray) -> None:
        self._data = data

    def __len__(self) -> int:
        return int(self._data.shape[0])

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        row = self._data[i]
        return "".join(chr(c - 1) for c in row[row > 0])

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return tuple(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __repr__(self) -> str:
        return repr(tuple(self))


@read_from_shared_memory.register(UnicodeText)
def _read_unicode_text(space: UnicodeText, shared_memory: Any, n: int = 1) -> Sequence[str]:
    return _SharedTexts(
        np.frombuffer(shared_memory.get_obj(), dtype=np.int32).reshape((n, space.max_length))
    )
