r"""Re-renderings of a gold answer: forms that must verify as equal, and near misses that must not.

Used by the round-trip tests over every shipped benchmark and by ``benchmarks/verify.py``; useful
to test any answer checker. Each function returns ``[(kind, text), ...]`` where every text differs
from the gold string; a kind that does not apply to a gold is left out.

Equal renderings: ``spaces`` (extra spaces around operators and commas), ``left_right``
(``\left(``...``\right)`` for every bracket pair), ``dfrac`` (``\frac`` <-> ``\dfrac``), ``decimal``
(a simple fraction or mixed number as a decimal; an integer as ``N.0``), ``fraction`` (a plain
decimal as ``\frac{p}{q}``), ``reordered`` (an unordered list or ``\{set\}`` reversed).

Near misses: ``off_by_one`` (the first number plus one), ``sign_flipped`` (the answer negated,
or for lists, intervals, tuples and equations the first non-zero number negated), ``digit_changed``
(a digit of the first multi-digit number changed by 5), ``letter_changed`` (for answers without
digits: the last letter of the text shifted).

Example:
    >>> dict(equal_renderings(r"\frac{1}{4}"))["decimal"]
    '0.25'
    >>> dict(near_misses("(1,-16)"))["sign_flipped"]
    '(-1,-16)'
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["equal_renderings", "near_misses"]

_NUMBER = re.compile(r"(?<![\\A-Za-z_])\d{1,3}(?:,\d{3})+(?![\d])|(?<![\\A-Za-z_])\d+(?:\.\d+)?")
_SIMPLE_FRACTION = re.compile(
    r"^(-?)\s*(?:\\[dt]?frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}|\\[dt]?frac\s*(\d)(\d)|(\d+)\s*/\s*(\d+))$"
)
_MIXED = re.compile(r"^(-?)(\d+)\s*\\[dt]?frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}$")
_DECIMAL = re.compile(r"^(-?)(\d+)\.(\d{1,6})$")
_INTEGER = re.compile(r"^-?(?:\d{1,3}(?:,\d{3})+|\d+)$")
_OPEN = {"(": ")", "[": "]"}


def equal_renderings(gold: str) -> list[tuple[str, str]]:
    """Forms of ``gold`` that a verifier must call equal to it (each differs from ``gold``)."""
    g = gold.strip()
    out = [
        ("spaces", _spaced(g)),
        ("left_right", _left_right(g)),
        ("dfrac", _dfrac(g)),
        ("decimal", _as_decimal(g)),
        ("fraction", _as_fraction(g)),
        ("reordered", _reordered(g)),
    ]
    return _distinct(gold, out)


def near_misses(gold: str) -> list[tuple[str, str]]:
    """Forms close to ``gold`` that a verifier must call *not* equal to it."""
    g = gold.strip()
    out = [
        ("off_by_one", _off_by_one(g)),
        ("sign_flipped", _sign_flipped(g)),
        ("digit_changed", _digit_changed(g)),
        ("letter_changed", _letter_changed(g)),
    ]
    return _distinct(gold, out)


def _distinct(gold: str, items: list[tuple[str, str | None]]) -> list[tuple[str, str]]:
    seen = {gold.strip()}
    out: list[tuple[str, str]] = []
    for kind, text in items:
        if text is not None and text.strip() not in seen:
            seen.add(text.strip())
            out.append((kind, text))
    return out


def _digit_group(s: str, comma: int) -> bool:
    r"""Whether the comma at ``comma`` separates digit groups (``10,080``, ``10,\!080``)."""
    return s[comma - 1 : comma].isdigit() and bool(re.match(r"(?:\\!)?\d{3}(?!\d)", s[comma + 1 :]))


# -- equal renderings ---------------------------------------------------------------------------------
def _spaced(g: str) -> str:
    # commas of digit groups (10,080) stay tight: spaced out they would make a set
    s = re.sub(r"(?<![\d\\]),|(?<!\\),(?!(?:\\!)?\d{3}(?!\d))", " , ", g)
    s = re.sub(r"(?<!\\)([=+<>])", r" \1 ", s)
    return "  " + re.sub(r"\s+", "  ", s).strip() + "  "


def _bracket_pairs(g: str) -> list[tuple[int, int]] | None:
    """Matched (open, close) offsets of unescaped ( [ with ) ], or None if they do not nest."""
    stack: list[int] = []
    pairs: list[tuple[int, int]] = []
    i = 0
    while i < len(g):
        ch = g[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "([":
            stack.append(i)
        elif ch in ")]":
            if not stack:
                return None
            pairs.append((stack.pop(), i))
        i += 1
    return pairs if not stack else None


def _left_right(g: str) -> str | None:
    if re.search(r"\\(?:left|right)(?![A-Za-z])", g):
        return None
    pairs = _bracket_pairs(_mask_text(g))  # brackets inside \text{} are words, not maths
    if not pairs:
        return None
    opens = {o for o, _ in pairs}
    closes = {c for _, c in pairs}
    out = []
    for i, ch in enumerate(g):
        if i in opens:
            out.append("\\left" + ch)
        elif i in closes:
            out.append("\\right" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _dfrac(g: str) -> str | None:
    if re.search(r"\\dfrac(?![A-Za-z])", g):
        return re.sub(r"\\dfrac(?![A-Za-z])", r"\\frac", g)
    if re.search(r"\\frac(?![A-Za-z])", g):
        return re.sub(r"\\frac(?![A-Za-z])", r"\\dfrac", g)
    return None


def _decimal_text(value: Fraction) -> str:
    q = value.denominator
    while q % 2 == 0:
        q //= 2
    while q % 5 == 0:
        q //= 5
    if q == 1:  # terminating: exact
        digits = 0
        while (value * 10**digits).denominator != 1:
            digits += 1
        text = f"{value.numerator / value.denominator:.{max(digits, 1)}f}"
        exact = Fraction(text)
        return text if exact == value else str(value)
    return f"{float(value):.10f}"


def _as_decimal(g: str) -> str | None:
    m = _SIMPLE_FRACTION.match(g)
    if m:
        sign, a1, b1, a2, b2, a3, b3 = m.groups()
        num, den = (a1, b1) if a1 is not None else (a2, b2) if a2 is not None else (a3, b3)
        if int(den) == 0:
            return None
        value = Fraction(int(num), int(den)) * (-1 if sign else 1)
        return _decimal_text(value)
    m = _MIXED.match(g)
    if m:
        sign, whole, num, den = m.groups()
        if int(den) == 0:
            return None
        value = (int(whole) + Fraction(int(num), int(den))) * (-1 if sign else 1)
        return _decimal_text(value)
    if _INTEGER.match(g):
        return g.replace(",", "") + ".0"
    return None


def _as_fraction(g: str) -> str | None:
    m = _DECIMAL.match(g)
    if not m:
        return None
    value = Fraction(m.group(2) + "." + m.group(3))
    if value.denominator == 1:
        return None
    sign = "-" if m.group(1) else ""
    return f"{sign}\\frac{{{value.numerator}}}{{{value.denominator}}}"


def _top_level_split(s: str) -> list[str]:
    """Split at commas outside any bracket or brace (digit-group commas stay)."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            escaped = s[i + 1 : i + 2]
            depth += 1 if escaped == "{" else -1 if escaped == "}" else 0
            i += 2
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0 and not _digit_group(s, i):
            parts.append(s[start:i])
            start = i + 1
        i += 1
    parts.append(s[start:])
    return parts


def _reordered(g: str) -> str | None:
    m = re.fullmatch(r"\\\{(.*)\\\}", g, flags=re.S)
    if m:
        items = _top_level_split(m.group(1))
        if len(items) >= 2 and len({i.strip() for i in items}) == len(items):
            return "\\{" + ",".join(reversed(items)) + "\\}"
        return None
    if g[:1] in "([" or "=" in g or "\\in" in g or "\\text" in g:
        return None  # tuples, intervals and equations are ordered
    items = _top_level_split(g)
    if len(items) >= 2 and len({i.strip() for i in items}) == len(items):
        return ",".join(i.strip() for i in reversed(items))
    return None


# -- near misses -------------------------------------------------------------------------------------
def _first_number(g: str, *, multi_digit: bool = False) -> re.Match[str] | None:
    for m in _NUMBER.finditer(_mask_text(g)):
        digits = re.sub(r"\D", "", m.group(0))
        if not multi_digit or len(digits) >= 2:
            return m
    return None


def _mask_text(g: str) -> str:
    r"""``g`` with the insides of ``\text{}``-like groups and of ``_{...}`` subscripts blanked."""

    def blank(m: re.Match[str]) -> str:
        return m.group(1) + "#" * (len(m.group(0)) - len(m.group(1)))

    s = re.sub(r"(\\(?:text|mbox|mathrm|textbf|operatorname)\s*)\{[^{}]*\}", blank, g)
    s = re.sub(r"(_)\{[^{}]*\}", blank, s)
    return re.sub(r"(_)\d", blank, s)


def _off_by_one(g: str) -> str | None:
    m = _first_number(g)
    if m is None:
        return None
    text = m.group(0)
    if "," in text:
        bumped = f"{int(text.replace(',', '')) + 1:,}"
    elif "." in text:
        whole, frac = text.split(".")
        bumped = f"{int(whole) + 1}.{frac}"
    else:
        bumped = str(int(text) + 1)
    return g[: m.start()] + bumped + g[m.end() :]


def _is_zero(g: str) -> bool:
    return re.fullmatch(r"[+-]?0+(?:\.0*)?", g.strip()) is not None


def _sign_flipped(g: str) -> str | None:
    if "\\pm" in g or "\\mp" in g or _is_zero(g):
        return None
    structured = bool(
        re.search(r"[=,]|\\in(?![A-Za-z])|\\begin|\\cup", g) or g[:1] in "([" or g.startswith("\\{")
    )
    if not structured:
        return g[1:].lstrip() if g.startswith("-") else "-" + g
    masked = _mask_text(g)
    start = masked.rfind("=") + 1
    for m in _NUMBER.finditer(masked, start):
        if float(m.group(0).replace(",", "")) == 0:
            continue
        before = g[: m.start()].rstrip()
        if before.endswith("-"):
            return before[:-1] + g[m.start() :]
        return g[: m.start()] + "-" + g[m.start() :]
    return None


def _digit_changed(g: str) -> str | None:
    m = _first_number(g, multi_digit=True)
    if m is None:
        return None
    text = m.group(0)
    pos = max(i for i, ch in enumerate(text) if ch.isdigit())
    changed = text[:pos] + str((int(text[pos]) + 5) % 10) + text[pos + 1 :]
    return g[: m.start()] + changed + g[m.end() :]


def _letter_changed(g: str) -> str | None:
    if re.search(r"\d", g):
        return None
    # the last letter that is not part of a control word (\text, \pi...)
    for i in range(len(g) - 1, -1, -1):
        ch = g[i]
        if ch.isascii() and ch.isalpha():
            j = i
            while j > 0 and g[j - 1].isalpha():
                j -= 1
            if j > 0 and g[j - 1] == "\\":
                continue
            new = "a" if ch == "z" else "A" if ch == "Z" else chr(ord(ch) + 1)
            return g[:i] + new + g[i + 1 :]
    return None
