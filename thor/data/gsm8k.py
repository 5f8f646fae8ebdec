r"""GSM8K's worked solutions: calculator annotations, and the solution as a TIRGen actor writes it.

GSM8K's solutions (``gsm8k_train``: the train split; ``gsm8k`` is the test split, never trained
on) mark every calculation as ``<<expression=value>>``, followed by the value in prose::

    Natalia sold 48/2 = <<48/2=24>>24 clips in May.
    #### 72

:func:`render_solution` is the text a reference actor writes (annotations kept: the ``gsm8k``
critic turns them into python cells and removes them; the ``#### 72`` line becomes a boxed
answer). :func:`strip_annotations` is the text without them; :func:`exact_value` computes an
annotation's arithmetic exactly (fractions) by walking its syntax tree: nothing is evaluated.

Example:
    >>> from thor.types import Problem

if TYPE_CHECKING:
    from thor.data.synthetic.actor import ReferenceActor
    >>> p = Problem(id="g", problem="?", answer="72", metadata={"solution":
    ...     "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72"})
    >>> print(render_solution(p))
    Natalia sold 48/2 = <<48/2=24>>24 clips in May.
    The answer is $\boxed{72}$.
    >>> strip_annotations(render_solution(p)).splitlines()[0]
    'Natalia sold 48/2 = 24 clips in May.'
    >>> exact_value("48/2"), exact_value("0.2*50"), exact_value("1/0")
    (Fraction(24, 1), Fraction(10, 1), None)
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from thor.errors import DatasetError
from thor.types import Problem

if TYPE_CHECKING:
    from thor.data.synthetic.actor import ReferenceActor

__all__ = [
    "ANNOTATION",
    "MARKUP",
    "exact_value",
    "reference_actor",
    "render_solution",
    "strip_annotations",
]

ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>=]*)>>")
"""A calculator annotation: group 1 the expression, group 2 the value it claims."""

MARKUP = re.compile(r"<<[^<>]*>>")
"""Anything between ``<<`` and ``>>``: what :func:`strip_annotations` removes."""

_FINAL = re.compile(r"^####\s*(.+?)\s*$", re.MULTILINE)


def strip_annotations(text: str) -> str:
    """``text`` without its ``<<expression=value>>`` annotations (the prose's own value stays)."""
    return MARKUP.sub("", text)


def render_solution(problem: Problem) -> str:
    r"""The problem's GSM8K solution with its final ``#### answer`` line as ``\boxed{answer}``.

    Raises:
        DatasetError: the problem has no ``solution`` with a ``####`` line.
    """
    solution = problem.metadata.get("solution")
    if not isinstance(solution, str) or not _FINAL.search(solution):
        raise DatasetError(f"{problem.id}: no GSM8K solution (a 'solution' with a '####' line)")
    answer = problem.answer or _FINAL.search(solution).group(1).replace(",", "")  # type: ignore[union-attr]
    body = _FINAL.sub("", solution).rstrip()
    return f"{body}\nThe answer is $\\boxed{{{answer}}}$."


def reference_actor(problems: Iterable[Problem], tokenizer: Any) -> ReferenceActor:
    """A TIRGen actor that writes these problems' GSM8K solutions in ``tokenizer``'s tokens.

    Its text keeps the annotations (the ``gsm8k`` critic turns them into cells and removes them);
    it finds its place in a transcript ignoring them.
    """
    from thor.data.synthetic.actor import ReferenceActor

    return ReferenceActor(problems, tokenizer, render=render_solution, hidden=MARKUP)


def exact_value(expression: str) -> Fraction | None:
    """The exact value of an arithmetic expression (numbers, ``+ - * /``, parentheses), or ``None``.

    Only the syntax tree is read: anything but numbers and those operators gives ``None``, as does
    a division by zero.
    """
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError):
        return None
    try:
        return _value(tree.body)
    except (ZeroDivisionError, _NotArithmetic):
        return None


class _NotArithmetic(Exception):
    pass


def _value(node: ast.expr) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _value(node.operand)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp):
        a, b = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Div):
            return a / b
    raise _NotArithmetic(ast.dump(node))
