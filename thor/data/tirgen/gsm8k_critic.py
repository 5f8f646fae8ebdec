r"""The GSM8K rule critic: each ``<<expression=value>>`` calculation of a step becomes a python cell.

GSM8K's solutions mark their calculations (``Natalia sold 48/2 = <<48/2=24>>24 clips in May.``).
Seeing only the step, this critic removes the annotations (:meth:`GSM8KCritic.clean`: the prose
stays verbatim) and puts, before each line that had one, a cell that computes it and prints the
result; the sandbox runs it and its real output stands where the annotation's claimed value was,
right before the prose that states it. Cells are real code, not copies of the value:

- the result gets a name from the prose (``24 clips`` -> ``clips``; ``$30`` -> ``dollars``;
  else ``result``), unique within the step;
- a number that an earlier cell of the step computed, and that the step's text did not mention
  before that cell, is that cell's variable: ``48+24`` after ``clips = 48 / 2`` is
  ``48 + clips`` (only when the earlier value is exact, so the arithmetic is unchanged);
- a trivial annotation (``<<1148=1148>>``: no operator) gets no cell;
- at most ``max_blocks`` cells per step (THOR: 5 executions per step): consecutive lines share a
  cell when a step has more.

Expressions are only translated to python source (checked with :func:`ast.parse`); nothing is
evaluated outside the sandbox (the exactness check reads the syntax tree with fractions).

Example:
    >>> step = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    >>> step += "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n"
    >>> r = GSM8KCritic().rewrite(step)
    >>> r.status, r.blocks
    ('code', ['clips = 48 / 2\nprint(clips)', 'clips_altogether = 48 + clips\nprint(clips_altogether)'])
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
from dataclasses import dataclass, field
from fractions import Fraction

from thor.data.gsm8k import ANNOTATION, MARKUP, exact_value, strip_annotations
from thor.data.tirgen.critic import CriticResult
from thor.data.tirgen.text import Part

__all__ = ["GSM8KCritic"]

_COMPUTES = re.compile(r"[\d.)]\s*[-+*/]\s*[\d.(]")
"""An operator between operands (``2-.5`` counts; ``1148`` and ``+7`` do not)."""
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
_AFTER = re.compile(
    r"^\s*\$?\s*-?[\d,]*\.?\d*\s*%?\s*([A-Za-z][A-Za-z'-]*)(?:\s+([A-Za-z][A-Za-z-]*))?"
)
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "per",
        "each",
        "is",
        "are",
        "was",
        "were",
        "be",
        "so",
        "that",
        "this",
        "than",
        "then",
        "more",
        "less",
        "left",
        "total",
        "altogether",
        "all",
        "in",
        "together",
        "it",
        "its",
        "he",
        "she",
        "they",
        "we",
        "you",
        "his",
        "her",
        "their",
        "our",
        "your",
        "which",
        "who",
        "there",
        "here",
        "as",
        "if",
        "into",
        "out",
        "up",
        "down",
        "over",
        "after",
        "before",
        "both",
        "every",
        "only",
        "now",
        "will",
        "would",
        "can",
        "could",
        "do",
        "does",
        "did",
        "has",
        "have",
        "had",
        "not",
        "no",
        "times",
        "minutes",
        "hours",
        "days",
        "weeks",
        "years",
        "dollars",
        "cents",
    ]
)
_QUALIFIERS = frozenset(["altogether", "total", "left", "more", "less", "together"])
"""Stop words as a first word, kept as a second (``72 clips altogether`` -> ``clips_altogether``)."""
_UNITS = frozenset(["minutes", "hours", "days", "weeks", "years", "dollars", "cents"])
_RESERVED = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | {"math", "np", "sp"}


@dataclass
class _Calc:
    """One annotation: where it is in the step, its python source and the name of its result."""

    line: int
    name: str
    source: str


@dataclass
class _State:
    """What the step's earlier cells computed: name -> (exact value, visible text position)."""

    names: set[str] = field(default_factory=set)
    results: list[tuple[str, Fraction, int]] = field(default_factory=list)


def _identifier(words: list[str]) -> str:
    name = "_".join(
        re.sub(r"[^a-z0-9]+", "_", w.lower().removesuffix("'s")).strip("_") for w in words
    )
    name = re.sub(r"_+", "_", name).strip("_")
    return name if name and not name[0].isdigit() else ""


def _base_name(after: str, before: str) -> str:
    """A variable name from the prose around an annotation (see the module docstring)."""
    m = _AFTER.match(after)
    if m:
        first, second = m.group(1).lower(), (m.group(2) or "").lower()
        if first in _UNITS:
            return first
        if first not in _STOP:
            keep = second and (second not in _STOP or second in _QUALIFIERS)
            words = [first] + ([second] if keep else [])
            name = _identifier(words)
            if name:
                return name
    if before.rstrip().endswith("$") or after.lstrip().startswith("$"):
        return "dollars"
    return "result"


def _unique(base: str, taken: set[str]) -> str:
    name = base if base not in _RESERVED else f"{base}_"
    k = 2
    while name in taken:
        name = f"{base}_{k}"
        k += 1
    taken.add(name)
    return name


def _python(expr: str, state: _State, text_before: str) -> str | None:
    """The expression as python source, earlier results used by name where that is exact."""

    def swap(m: re.Match[str]) -> str:
        value = Fraction(m.group(0))
        for name, result, pos in reversed(state.results):
            if result == value and not _mentioned(m.group(0), text_before[:pos]):
                return name
        return m.group(0)

    src = _NUMBER.sub(swap, expr.replace(" ", ""))
    src = re.sub(r"\s*([-+*/])\s*", r" \1 ", src).strip()
    src = re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", src))
    src = re.sub(r"^- ", "-", re.sub(r"([(*/+-]) - (\d)", r"\1 -\2", src))
    try:
        ast.parse(src, mode="eval")
    except (SyntaxError, ValueError):
        return None
    return src


def _mentioned(number: str, text: str) -> bool:
    return any(m.group(0) == number for m in _NUMBER.finditer(text.replace(",", "")))


class GSM8KCritic:
    """A rule critic for GSM8K's annotated solutions (see the module docstring).

    Args:
        max_blocks: at most this many cells per step.

    Example:
        >>> GSM8KCritic().clean("He has 3*4 = <<3*4=12>>12 apples.\\n")
        'He has 3*4 = 12 apples.\\n'
        >>> GSM8KCritic().rewrite("No calculation here.\\n").status
        'no_code'
    """

    name = "gsm8k"

    def __init__(self, max_blocks: int = 5) -> None:
        if max_blocks < 1:
            raise ValueError("max_blocks must be >= 1")
        self.max_blocks = max_blocks

    def clean(self, step: str) -> str:
        """The step without its annotations: what a rewrite keeps and what stays without code."""
        return strip_annotations(step)

    def calculations(self, step: str) -> list[_Calc]:
        """The step's non-trivial annotations as named python assignments, in order."""
        lines = step.splitlines(keepends=True)
        state = _State()
        calcs: list[_Calc] = []
        seen = ""  # the cleaned text so far: where numbers were first mentioned
        for i, line in enumerate(lines):
            pos = 0
            for m in ANNOTATION.finditer(line):
                seen += strip_annotations(line[pos : m.start()])
                pos = m.end()
                expr = m.group(1)
                if not _COMPUTES.search(expr):
                    continue  # "<<1148=1148>>": nothing to compute
                src = _python(expr, state, seen)
                if src is None:
                    continue
                name = _unique(
                    _base_name(MARKUP.sub("", line[m.end() :]), line[: m.start()]), state.names
                )
                value = exact_value(expr)
                claimed = _claimed(m.group(2))
                if value is not None and claimed is not None and value == claimed:
                    state.results.append((name, value, len(seen)))
                calcs.append(_Calc(line=i, name=name, source=src))
            seen += strip_annotations(line[pos:])
        return calcs

    def rewrite(self, step: str) -> CriticResult:
        calcs = self.calculations(step)
        if not calcs:
            return CriticResult(status="no_code")
        lines = self.clean(step).splitlines(keepends=True)
        groups = _group_lines(sorted({c.line for c in calcs}), self.max_blocks)
        parts: list[Part] = []
        pos = 0
        for group in groups:
            first = group[0]
            if first > pos:
                parts.append(Part(kind="text", text="".join(lines[pos:first])))
                pos = first
            inside = [c for c in calcs if c.line in group]
            code = "\n".join(f"{c.name} = {c.source}" for c in inside)
            code += f"\nprint({', '.join(c.name for c in inside)})"
            parts.append(Part(kind="code", text=code))
        if pos < len(lines):
            parts.append(Part(kind="text", text="".join(lines[pos:])))
        return CriticResult(status="code", parts=parts)


def _claimed(value: str) -> Fraction | None:
    try:
        return Fraction(value.replace(",", "").strip())
    except (ValueError, ZeroDivisionError):
        return None


def _group_lines(lines: list[int], max_blocks: int) -> list[list[int]]:
    """Consecutive annotated lines in at most ``max_blocks`` groups of nearly equal size."""
    n = len(lines)
    k = min(n, max_blocks)
    sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
    out: list[list[int]] = []
    start = 0
    for size in sizes:
        out.append(lines[start : start + size])
        start += size
    return out
