r"""Cheap checks that run in the caller's process before any answer reaches a sympy worker.

Three jobs, all pure Python (no sympy, no math-verify, nothing that can evaluate text):

- :func:`refusal`: reject input that is not an answer (empty, too long, control characters,
  invalid UTF-8, unbalanced braces, TeX programming macros such as ``\def`` or ``\input``) with a
  reason, so that it never reaches a parser;
- :func:`normalize_answer`: a conservative string normal form (``\dfrac`` -> ``\frac``, no
  ``\left``/``\right``, no spacing macros, no redundant spaces, no ``$``/``**`` wrappers); two
  answers with the same normal form are equal without asking sympy;
- :func:`integer_value`: the value of an answer that is a plain integer (``1,000`` and ``1{,}000``
  included), so that integer-vs-integer pairs are decided exactly in the caller.

Example:
    >>> normalize_answer(r"\left( \dfrac{1}{2}, 3 \right)")
    '(\\frac{1}{2},3)'
    >>> integer_value("10{,}080"), integer_value("-007"), integer_value("1.5")
    (10080, -7, None)
    >>> refusal("", "prediction"), refusal("\\def\\x{1}", "gold")
    ('empty prediction', 'gold contains the TeX programming macro \\def')
"""

from __future__ import annotations

import re

__all__ = ["coerce_text", "integer_value", "normalize_answer", "refusal"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TEX_PROGRAMMING = re.compile(
    r"\\(?:def|edef|gdef|xdef|let|input|include|includeonly|newcommand|renewcommand|"
    r"providecommand|DeclareMathOperator|newenvironment|renewenvironment|write|immediate|"
    r"openout|openin|read|catcode|csname|expandafter|usepackage|documentclass|special|"
    r"directlua|jobname|loop)(?![A-Za-z])"
)
_SPACING = re.compile(r"\\[,;:! ]|\\quad|\\qquad|~|\\displaystyle|\\textstyle")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![A-Za-z])\s*")
_FRAC = re.compile(r"\\[dt]frac(?![A-Za-z])")
# Whitespace is dropped unless it separates a control word from a letter (``\pi r``).
_SPACE = re.compile(r"(\\[A-Za-z]+)?(\s+)")
# "32, 349" (a comma, then typed spaces, then a digit) is a list; "32,349" and "32,\\!349" one number
_LIST_COMMA = re.compile(r"(?<=\d),[ \t\n]+(?=\d)")
_INT = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)")


def coerce_text(value: object) -> tuple[str | None, str]:
    """Turn an input into text: ``(text, "")``, or ``(None, why)`` for input that is not text.

    ``bytes`` are decoded as UTF-8; invalid UTF-8 (in bytes, or as lone surrogates in a ``str``
    decoded with ``surrogateescape``) is refused rather than guessed at.
    """
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8"), ""
        except UnicodeDecodeError:
            return None, "not valid UTF-8"
    if not isinstance(value, str):
        return None, f"not text ({type(value).__name__})"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None, "not valid UTF-8 (lone surrogates)"
    return value, ""


def refusal(text: str, role: str, *, max_chars: int = 2000) -> str | None:
    """Why ``text`` cannot be an answer (``role`` is "gold" or "prediction"), or ``None`` if it can."""
    who = "prediction" if role != "gold" else "gold"
    if not text.strip():
        return f"empty {who}"
    if len(text) > max_chars:
        return f"{who} longer than {max_chars} characters ({len(text)})"
    if _CONTROL.search(text):
        return f"{who} contains control characters"
    m = _TEX_PROGRAMMING.search(text)
    if m:
        return f"{who} contains the TeX programming macro {m.group(0)}"
    if not _braces_balanced(text):
        return f"unbalanced braces in the {who}"
    return None


def _braces_balanced(text: str) -> bool:
    depth = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


def _unwrap(s: str) -> str:
    changed = True
    while changed:
        changed = False
        s = s.strip()
        for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**")):
            if len(s) > len(left) + len(right) and s.startswith(left) and s.endswith(right):
                s = s[len(left) : len(s) - len(right)]
                changed = True
        if s.startswith("\\boxed{") and s.endswith("}") and _braces_balanced(s[7:-1]):
            s = s[7:-1]
            changed = True
        if s.endswith(".") and not s.endswith("\\."):
            s = s[:-1]
            changed = True
    return s


def normalize_answer(text: str) -> str:
    r"""A conservative normal form: equal forms mean equal answers (never the converse).

    Removes what never changes a value: math delimiters and markdown bold around the answer, a
    trailing full stop, ``\left``/``\right`` and sizing macros, spacing macros (``\,`` ``\!``
    ``\quad``), ``\displaystyle``; writes ``\dfrac``/``\tfrac`` as ``\frac`` and ``{,}`` as ``,``;
    drops whitespace except one space between a control word and a letter (``\pi r``) and one
    typed between a comma and a digit that follows a digit (``32, 349`` is a list, ``32,349`` and
    ``32,\\!349`` are a number).
    """
    s = _unwrap(text)
    s = _LIST_COMMA.sub(",\ue000", s)  # kept through the whitespace removal below
    s = s.replace("{,}", ",")
    s = _SPACING.sub(" ", s)
    s = _LEFT_RIGHT.sub("", s)
    s = _FRAC.sub(r"\\frac", s)
    s = _SPACE.sub(_space, s)
    return _unwrap(s.replace("\ue000", " "))


def _space(m: re.Match[str]) -> str:
    word = m.group(1)
    if word is None:
        return ""
    following = m.string[m.end() : m.end() + 1]
    return word + " " if following.isalpha() else word


def integer_value(text: str) -> int | None:
    """The integer an answer denotes when it is a plain integer (thousands commas allowed), else None.

    Mirrors math-verify's reading (``1,000`` is one thousand, not the set {1, 0}); integers longer
    than 4,000 digits give ``None`` (Python refuses to convert them, and they are not answers).
    """
    s = normalize_answer(text)
    if len(s) > 4000 or not _INT.fullmatch(s):
        return None
    return int(s.replace(",", ""))
