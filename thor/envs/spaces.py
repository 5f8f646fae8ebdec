"""A gymnasium Text space for real prompts: any Unicode, newlines, LaTeX, up to a length."""

from __future__ import annotations

import string
from typing import Any

from gymnasium.spaces import Text

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
