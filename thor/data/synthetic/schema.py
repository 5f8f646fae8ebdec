"""The schema of a synthetic problem's metadata and its worked solution (version 1).

Example:
    >>> step = SolutionStep(text="2^10 = 1024.", code="print(2 ** 10)", value="1024")
    >>> format_answer(Fraction(-7, 3))
    '-\\\\frac{7}{3}'
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FAMILIES", "Family", "SolutionStep", "Split", "SyntheticMeta", "format_answer"]

Split = Literal["train", "heldout"]
Family = Literal["arithmetic", "modular", "combinatorics", "number_theory", "equations", "series"]
FAMILIES: tuple[str, ...] = (
    "arithmetic",
    "modular",
    "combinatorics",
    "number_theory",
    "equations",
    "series",
)


class SolutionStep(BaseModel):
    """One step of a worked solution.

    Attributes:
        text: one or two sentences as a person would write them, stating the step's result.
        code: where the step computes something, a self-contained python snippet (no state from
            earlier steps; it may import ``math``, ``fractions`` or ``sympy``) that prints the value.
        value: what ``code`` prints, stripped (``None`` for a step without code).
    """

    model_config = ConfigDict(extra="forbid")

    text: str
    code: str | None = None
    value: str | None = None


class SyntheticMeta(BaseModel):
    """``Problem.metadata`` of a synthetic problem.

    Attributes:
        family: one of :data:`FAMILIES`.
        kind: the problem kind within the family (``mul4``, ``powmod``...).
        difficulty: 1 (2-digit addition) to 5 (modular inverses).
        template: index of the wording used among the kind's templates.
        params: the parameters the problem was built from.
        split: ``train`` or ``heldout``.
        steps: the worked solution; the last step's value is the answer (``7/3`` for
            ``\\frac{7}{3}``).
        schema_version: 1.
    """

    model_config = ConfigDict(extra="forbid")

    family: Family
    kind: str
    difficulty: int = Field(ge=1, le=5)
    template: int = Field(ge=0)
    params: dict[str, Any]
    split: Split
    steps: list[SolutionStep] = Field(min_length=1)
    schema_version: Literal[1] = 1


def format_answer(value: int | Fraction) -> str:
    """``12`` for an integer, ``\\frac{7}{3}`` (or ``-\\frac{7}{3}``) for a fraction."""
    v = Fraction(value)
    if v.denominator == 1:
        return str(v.numerator)
    sign = "-" if v < 0 else ""
    return f"{sign}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"
