r"""Final-answer extraction from model text: strict ``\boxed{}`` by default, lenient fallbacks on request.

Training rewards use the strict mode: the answer is the last ``\boxed{...}`` (or ``\fbox{...}``),
as THOR-SPEC section 0 says, and a response without one has no answer. Evaluation of models that
were not trained to box their answers can opt into ``mode="lenient"``, which falls back, in this
order, to the phrases models actually write:

1. an anchored phrase, the last one in the text: "The final answer is ...", "Final answer: ...",
   "The answer is ...", "Answer: ...";
2. the last markdown-bold span, ``**73**``;
3. the last number of the final non-empty line that stands on its own (not inside a word, LaTeX,
   an interval or a tuple).

Every function here is total: any string (megabytes, control characters, unbalanced braces) gives
a string or ``None``, never an exception. Only the last 8 box openers are tried, so that a
degenerate response of thousands of unclosed ``\boxed{`` costs at most 8 scans of its tail.

Example:
    >>> extract_answer(r"so \boxed{\frac{1}{2}} and finally \boxed{3}")
    '3'
    >>> extract_answer("The answer is 42.") is None
    True
    >>> extract_answer("The answer is 42.", mode="lenient")
    '42'
    >>> extract_answer("Adding them up gives **73**", mode="lenient")
    '73'
"""

from __future__ import annotations

import re
from typing import Literal

from thor.text.protocol import extract_boxed

__all__ = ["ExtractionMode", "extract_answer"]

ExtractionMode = Literal["boxed", "lenient", "math_verify"]
"""``boxed`` (training), ``lenient`` (thor's fallbacks), ``math_verify`` (math-verify's extraction,
which needs sympy: it runs in the verifier's workers, see :meth:`thor.rewards.Verifier.extract_answer`)."""

_MAX_LENIENT_CHARS = 300
"""A lenient answer longer than this is prose, not an answer: the next fallback is tried."""

_MAX_BOXES = 8
_OPENER = re.compile(r"\\(?:boxed|fbox)")
_ANCHOR = re.compile(
    r"(?i)(?:\bfinal\s+answer\s*(?:is\b)?\s*[:：]?|\banswer\s+is\b\s*[:：]?|\banswer\s*[:：])\s*"
)
_BOLD = re.compile(r"\*\*([^*\n]{1,300}?)\*\*")
# a number standing on its own: not part of a word ("AZYUK2A"), of LaTeX ("\frac{1}{2}") or of an
# interval or tuple ("[0,1)")
_NUMBER = re.compile(
    r"(?<![\w\\{}^_(\[,.+*/-])-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?(?![\w\\{}^_)\]/*+-]|\.\d|\s*\\[A-Za-z])"
)
_WRAPPERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**"), ("`", "`"))


def extract_answer(text: str, *, mode: ExtractionMode = "boxed") -> str | None:
    r"""The final answer in ``text``, or ``None`` when there is none.

    Args:
        text: the model's response (any string; a non-string gives ``None``).
        mode: ``"boxed"`` (default): the content of the last closed ``\boxed{}``/``\fbox{}``,
            nested braces matched (:func:`thor.text.protocol.extract_boxed`). ``"lenient"``: the
            boxed answer if there is one, else the fallbacks listed in the module docstring.
            (``"math_verify"`` needs sympy: :meth:`thor.rewards.Verifier.extract_answer`.)

    Returns:
        The answer text, stripped; ``None`` for no answer (an empty box counts as no answer).
    """
    if not isinstance(text, str):
        return None
    boxed = extract_boxed(_last_box_openers(text))
    if boxed is not None and boxed.strip():
        return boxed.strip()
    if mode == "boxed":
        return None
    if mode == "math_verify":
        raise ValueError(
            "the math_verify extraction parses with sympy, in the verifier's worker processes: "
            "use Verifier.extract_answer(text, mode='math_verify') or Verifier.verify_response"
        )
    if mode != "lenient":
        raise ValueError(
            f"unknown extraction mode {mode!r}; use 'boxed', 'lenient' or 'math_verify'"
        )
    for finder in (_from_anchor, _from_bold, _from_last_line):
        found = finder(text)
        if found:
            return found
    return None


def _last_box_openers(text: str) -> str:
    r"""``text`` from its ``_MAX_BOXES``-th last box opener on (all of it when it has fewer).

    :func:`extract_boxed` scans from each unclosed box to the end of the text, which is quadratic
    in a degenerate response made of thousands of unclosed ``\boxed{``. Only the last few boxes
    are tried: a response whose last ``_MAX_BOXES`` boxes are all unclosed has no answer.
    """
    if text.count("\\boxed") + text.count("\\fbox") <= _MAX_BOXES:
        return text
    starts = [m.start() for m in _OPENER.finditer(text)]
    return text[starts[-_MAX_BOXES] :] if len(starts) > _MAX_BOXES else text


def _clean(candidate: str) -> str | None:
    """Strip math delimiters, markdown and trailing punctuation from a lenient candidate."""
    s = candidate.strip()
    for _ in range(3):
        s = s.strip().rstrip(".;,!。").strip()
        for left, right in _WRAPPERS:
            if len(s) > len(left) + len(right) and s.startswith(left) and s.endswith(right):
                s = s[len(left) : len(s) - len(right)]
                break
    s = s.strip()
    if not s or len(s) > _MAX_LENIENT_CHARS:
        return None
    return s


def _from_anchor(text: str) -> str | None:
    tail = text[-20_000:]
    matches = list(_ANCHOR.finditer(tail))
    for m in reversed(matches):
        rest = tail[m.end() :]
        line = rest.split("\n", 1)[0]
        # A sentence ends at ". " (not at the point of a decimal such as 0.5).
        line = re.split(r"\.(?:\s|$)", line, maxsplit=1)[0]
        found = _clean(line)
        if found:
            return found
    return None


def _from_bold(text: str) -> str | None:
    matches = list(_BOLD.finditer(text[-20_000:]))
    for m in reversed(matches):
        found = _clean(m.group(1))
        if found and any(ch.isdigit() for ch in found):
            return found
    return None


def _from_last_line(text: str) -> str | None:
    for line in reversed(text[-20_000:].splitlines()):
        if line.strip():
            numbers = _NUMBER.findall(line)
            return numbers[-1] if numbers else None
    return None
