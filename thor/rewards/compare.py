r"""Answer equivalence inside a verifier worker: math-verify, and thor's corrections of it.

This module imports sympy and math-verify and runs only in worker processes (see
:mod:`thor.rewards.pool`), after :func:`thor.rewards.safety.install_eval_guard`. Answers are parsed
as LaTeX only (math-verify's ``LatexExtractionConfig``; its expression extraction, which calls
``parse_expr`` on raw text, is not used) and compared with ``math_verify.verify``. Thor then
corrects four kinds of wrong answer math-verify is known to give (docs/verification.md):

1. **Tiny values said equal.** math-verify compares exact numbers by ``evalf(chop=True)`` of their
   difference, so ``1/2004!`` and ``1/2006!`` (or ``10^{-20}`` and ``2\cdot 10^{-20}``) are "equal".
   When math-verify says equal and both sides are exact numbers (no floats, no symbols, no
   percentages), thor re-checks at 50 significant digits with a *relative* tolerance of 1e-30.
2. **Equal on the real domain said unequal.** ``\sqrt{1/n}`` and ``1/\sqrt{n}`` differ only where
   both are imaginary (n < 0); math-verify's ``simplify`` cannot prove them equal. When math-verify
   says unequal and both sides are expressions in the same one to three symbols, thor evaluates
   both at ten fixed points and calls them equal when they agree (relative 1e-9) at every point
   where both are real and finite, with at least three such points. ``|x|`` and ``x`` stay unequal
   (both are real at x < 0 and differ there).

3. **Text-only matches.** When one side parses to no mathematical object, math-verify compares its
   *normalised text*, and that normalisation strips trailing letters it takes for units
   (``a + b + c`` and ``a + b + d`` both become ``a +``). Thor does not accept such a match: text
   answers are equal only when thor's own normal forms are identical (decided before a worker
   is asked, see :mod:`thor.rewards.normalize`).

4. **Equations judged by their solution sets** (decided before math-verify is asked). When both
   answers are single equations whose sides are exact rational functions of their symbols, they
   are equal when the squarefree parts of their numerators (``lhs - rhs`` over a common
   denominator) are nonzero constant multiples of each other and so are their denominators (in
   one variable the numerators suffice): ``x+y=1`` = ``2x+2y=2``,
   ``\frac{x^2}{4}+\frac{y^2}{3}=1`` = ``3x^2+4y^2=12``. With rational coefficients they are not
   equal when the numerators are not (their complex zero sets differ), which also catches a tiny
   constant changed (``x+y=10^{-20}`` against ``x+y=2\cdot 10^{-20}``). Other equations (floats,
   functions of the unknowns, no unknowns) keep math-verify's verdict, and the tiny-value check
   of correction 1 compares two equations only when both are assignments (a symbol on the left),
   whose right sides are values.

Reasons start with ``math-verify:`` or ``thor:`` so callers can tell which rule decided.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from itertools import product
from typing import Any

import sympy
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
from sympy import Expr, FiniteSet, Float, Tuple, UnevaluatedExpr
from sympy.core.function import AppliedUndef

__all__ = ["compare", "compare_response", "extract_response", "parse_answer", "warm_up"]

logging.getLogger("math_verify").setLevel(logging.ERROR)
logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)

_EXTRACTION = [LatexExtractionConfig(boxed_match_priority=0)]
# math-verify's own extraction from whole responses, as its README recommends for models told to box
# their answers and as its tests use it: LaTeX (boxed first), then plain expressions.
_RESPONSE_EXTRACTION = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
_PARSED: OrderedDict[str, list[Any]] = OrderedDict()
_PARSED_MAX = 4096
_POINTS = (
    0.5772156649015329,
    1.4142135623730951,
    2.718281828459045,
    3.141592653589793,
    0.36787944117144233,
    5.0990195135927845,
    -0.6931471805599453,
    -1.7320508075688772,
    -2.23606797749979,
    -4.123105625617661,
)
_NOT_SAMPLED = (
    AppliedUndef,
    sympy.Integral,
    sympy.Sum,
    sympy.Product,
    sympy.Limit,
    sympy.Derivative,
)


def parse_answer(text: str) -> list[Any]:
    r"""math-verify's parse of an extracted answer (as the content of a ``\boxed{}``), memoised.

    The memo (the last 4,096 distinct answers of this worker) saves re-parsing a gold answer that
    is compared with many predictions; parsed sympy objects are immutable, so sharing is safe.
    """
    hit = _PARSED.get(text)
    if hit is not None:
        _PARSED.move_to_end(text)
        return hit
    parsed = parse("\\boxed{" + text + "}", extraction_config=_EXTRACTION, parsing_timeout=None)
    _PARSED[text] = parsed
    if len(_PARSED) > _PARSED_MAX:
        _PARSED.popitem(last=False)
    return parsed


def parse_response(text: str) -> list[Any]:
    """math-verify's extraction from a whole response (``$...$``, "the answer is", boxes...).

    Returns math-verify's list: the parsed answer, then the extracted text; ``[text]`` or ``[]``
    when nothing parses. Expression extraction calls sympy's ``parse_expr`` on matched digits and
    operators, so it runs only here, under the worker's eval guard.
    """
    return parse(text, extraction_config=_RESPONSE_EXTRACTION, parsing_timeout=None)


def extract_response(text: str) -> str | None:
    """The answer math-verify's extraction finds in ``text`` (its normalised LaTeX), or None."""
    parsed = parse_response(text)
    return _answer_text(parsed) if _has_math(parsed) else None


def _answer_text(parsed: list[Any]) -> str:
    """The LaTeX of an extracted answer: math-verify's normalised match, or the parsed object's.

    Several matches joined into one set ("\\boxed{1} and \\boxed{2}") are written as that set, and
    so is a match whose normalised text lost a brace (math-verify cuts some macros short).
    """
    found = next((x.strip() for x in parsed if isinstance(x, str) and x.strip()), None)
    joined = found is not None and " and " in found and isinstance(parsed[0], FiniteSet)
    if found is None or joined or not _balanced(found):
        return str(sympy.latex(parsed[0]))
    return found


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text.replace("\\{", "").replace("\\}", ""):
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            return False
    return depth == 0


def compare(
    gold: str,
    pred: str,
    *,
    float_rounding: int = 6,
    numeric_precision: int = 15,
    corrections: bool = True,
) -> tuple[bool, str]:
    """Whether ``pred`` is equivalent to ``gold``, and why (see the module docstring)."""
    g = parse_answer(gold)
    if not g:
        return False, "math-verify: no answer could be parsed from the gold"
    p = parse_answer(pred)
    if not p:
        return False, "math-verify: no answer could be parsed from the prediction"
    return _judge(g, p, float_rounding, numeric_precision, corrections)


def compare_response(
    gold: str,
    response: str,
    *,
    float_rounding: int = 6,
    numeric_precision: int = 15,
    corrections: bool = True,
) -> tuple[bool, str, str | None]:
    """:func:`compare` of ``gold`` with the answer math-verify extracts from ``response``.

    Returns the verdict, its reason and the extracted answer text (None when none was found).
    A response from which only text (no mathematical object) is extracted has no answer.
    """
    g = parse_answer(gold)
    if not g:
        return False, "math-verify: no answer could be parsed from the gold", None
    p = parse_response(response)
    if not _has_math(p):
        return False, "refused: no answer found (math_verify extraction)", None
    equal, reason = _judge(g, p, float_rounding, numeric_precision, corrections)
    return equal, reason, _answer_text(p)


def _judge(
    g: list[Any], p: list[Any], float_rounding: int, numeric_precision: int, corrections: bool
) -> tuple[bool, str]:
    """math-verify's verdict on two parsed answers, with thor's corrections."""
    if corrections:
        decided = _compare_equations(g[0], p[0])
        if decided is not None:
            return decided
    equal = verify(
        g,
        p,
        float_rounding=float_rounding,
        numeric_precision=numeric_precision,
        timeout_seconds=None,
    )
    if not corrections:
        return equal, "math-verify: equal" if equal else "math-verify: not equal"
    if equal and not (_has_math(g) and _has_math(p)):
        return False, (
            "thor: math-verify matched only its text normalisation (which drops letters it "
            "takes for units); the answers' normal forms differ"
        )
    if equal:
        rel = _tiny_value_difference(g[0], p[0])
        if rel is not None:
            return False, (
                "thor: not equal at 50 digits (relative difference "
                f"{rel:.2e}); math-verify's absolute rounding said equal"
            )
        return True, "math-verify: equal"
    if _equal_on_real_domain(g[0], p[0]):
        return True, "thor: equal wherever both sides are real (numeric check at fixed points)"
    return False, "math-verify: not equal"


def _has_math(parsed: list[Any]) -> bool:
    return any(isinstance(x, sympy.Basic | sympy.MatrixBase) for x in parsed)


# -- correction 1: tiny exact values ------------------------------------------------------------
def _exact(e: Any) -> bool:
    return (
        isinstance(e, Expr)
        and not e.free_symbols
        and not e.has(Float)
        and not e.has(UnevaluatedExpr)
    )


def _values(e: Any, *, unwrap: bool = True) -> list[Any] | None:
    """The exact numbers a parsed answer stands for, in a canonical order; None if not that kind.

    An equation stands for its right side when ``unwrap`` (math-verify compares that side with a
    bare value); otherwise it is not a value.
    """
    if isinstance(e, sympy.Eq):
        if not unwrap:
            return None
        e = e.rhs
    if isinstance(e, Tuple | FiniteSet):
        items = list(e.args)
        if not all(_exact(x) for x in items):
            return None
        if isinstance(e, FiniteSet):
            keyed = [(sympy.N(x, 50), x) for x in items]
            if not all(k.is_real for k, _ in keyed):
                return None
            items = [x for _, x in sorted(keyed, key=lambda kx: kx[0])]
        return items
    return [e] if _exact(e) else None


def _tiny_value_difference(gold: Any, pred: Any) -> float | None:
    """The relative difference of two exact answers math-verify called equal, if it is real.

    Two equations are compared by value only when both are assignments (``x = 3``): the right
    side of any other equation is not a value (``2x+2y=2`` is ``x+y=1``).
    """
    unwrap = not (isinstance(gold, sympy.Eq) and isinstance(pred, sympy.Eq)) or (
        _is_assignment(gold) and _is_assignment(pred)
    )
    a, b = _values(gold, unwrap=unwrap), _values(pred, unwrap=unwrap)
    if a is None or b is None or len(a) != len(b):
        return None
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        vx, vy = sympy.N(x, 50), sympy.N(y, 50)
        if not (vx.is_number and vy.is_number):
            return None
        scale = max(abs(vx), abs(vy))
        if scale == 0:
            continue
        rel = abs(vx - vy) / scale
        if rel > sympy.Float("1e-30"):
            worst = max(worst, float(min(rel, sympy.Float(1e300))))
    return worst or None


def _is_assignment(e: Any) -> bool:
    return isinstance(e, sympy.Eq) and isinstance(e.lhs, sympy.Symbol)


# -- correction 4: equations by their solution sets ---------------------------------------------
def _compare_equations(gold: Any, pred: Any) -> tuple[bool, str] | None:
    r"""Thor's verdict on two equations with exact rational-function sides; None to keep math-verify's.

    Over the complex numbers, the solution set of ``num/den = 0`` (``num``, ``den`` coprime
    polynomials) is the zero set of ``num`` less that of ``den``, and its closure is the zero set of
    ``num``. So equal squarefree numerators and denominators (up to a nonzero constant) mean equal
    solution sets (in one variable the numerators suffice), and different squarefree numerators
    mean different ones. The second half needs
    exact squarefree parts, so it is used only with rational coefficients; with other constants
    (``\pi``, ``\sqrt{2}``) only a proven constant multiple decides.
    """
    parts = _rational_parts(gold, pred)
    if parts is None:
        return None
    (num_g, den_g), (num_p, den_p) = parts
    nums = _proportional(num_g, num_p)
    if nums is False:
        return False, "thor: the equations have different solution sets"
    # In one variable a coprime denominator has no zero in common with the numerator.
    if nums is True and (len(num_g.gens) == 1 or _proportional(den_g, den_p) is True):
        return True, (
            "thor: the equations have the same solution set (their sides' differences are "
            "constant multiples of each other)"
        )
    return None


def _rational_parts(gold: Any, pred: Any) -> tuple[tuple[Any, Any], tuple[Any, Any]] | None:
    """``(numerator, denominator)`` polynomials of each equation's ``lhs - rhs``, or None."""
    if not (isinstance(gold, sympy.Eq) and isinstance(pred, sympy.Eq)):
        return None
    diffs = []
    for eq in (gold, pred):
        lhs, rhs = eq.lhs, eq.rhs
        if not (isinstance(lhs, Expr) and isinstance(rhs, Expr)):
            return None
        if eq.has(Float, UnevaluatedExpr, *_NOT_SAMPLED):
            return None
        diffs.append(lhs - rhs)
    symbols = sorted(diffs[0].free_symbols | diffs[1].free_symbols, key=lambda s: s.name)
    if not symbols or len(symbols) > 6:
        return None
    out = []
    for d in diffs:
        num, den = sympy.fraction(sympy.cancel(sympy.together(d)))
        if not (num.is_polynomial(*symbols) and den.is_polynomial(*symbols)):
            return None
        num_poly, den_poly = sympy.Poly(num, *symbols), sympy.Poly(den, *symbols)
        if num_poly.total_degree() < 1:  # no symbol left: never or always true, not an equation
            return None
        out.append((num_poly, den_poly))
    return out[0], out[1]


def _proportional(a: Any, b: Any) -> bool | None:
    """Whether polynomials ``a`` and ``b`` have the same zero set; None when that is not proven.

    True when one is a nonzero constant multiple of the other (directly, or their squarefree
    parts); False only over the rationals, where squarefree parts are exact.
    """
    if a.total_degree() == 0 and b.total_degree() == 0:
        return True
    a, b = a.unify(b)
    exact = a.domain.is_ZZ or a.domain.is_QQ
    if exact:
        a, b = sympy.sqf_part(a), sympy.sqf_part(b)
        return bool((a * b.LC() - b * a.LC()).is_zero)
    for x, y in ((a, b), (sympy.sqf_part(a), sympy.sqf_part(b))):
        diff = x * y.LC() - y * x.LC()
        if diff.is_zero or all(c.equals(0) is True for c in diff.coeffs()):
            return True
    return None


# -- correction 2: equal where both sides are real ---------------------------------------------
def _equal_on_real_domain(gold: Any, pred: Any) -> bool:
    if not (isinstance(gold, Expr) and isinstance(pred, Expr)):
        return False
    gs, ps = gold.free_symbols, pred.free_symbols
    names = {s.name for s in gs}
    if not gs or len(gs) > 3 or names != {s.name for s in ps} or len(ps) != len(gs):
        return False
    if gold.has(*_NOT_SAMPLED) or pred.has(*_NOT_SAMPLED):
        return False
    gsyms = sorted(gs, key=lambda s: s.name)
    psyms = sorted(ps, key=lambda s: s.name)
    agree = 0
    for point in _points(len(gsyms)):
        va = _real_value(gold, dict(zip(gsyms, point, strict=True)))
        vb = _real_value(pred, dict(zip(psyms, point, strict=True)))
        if va is None or vb is None:
            continue
        if abs(va - vb) > 1e-9 * max(1.0, abs(va), abs(vb)):
            return False
        agree += 1
    return agree >= 3


def _points(n: int) -> list[tuple[float, ...]]:
    if n == 1:
        return [(v,) for v in _POINTS]
    k = len(_POINTS)
    return [tuple(_POINTS[(j * (i + 3) + i) % k] for i in range(n)) for j in range(k)]


def _real_value(expr: Expr, subs: dict[Any, float]) -> float | None:
    try:
        v = expr.evalf(30, subs={s: sympy.Float(x, 30) for s, x in subs.items()})
    except (ValueError, TypeError, ArithmeticError, RecursionError):
        return None
    if not isinstance(v, sympy.Number) or not v.is_finite or not v.is_real:
        return None
    return float(v)


def warm_up() -> None:
    """Load the parser's lazy parts (ANTLR tables, regexes) so the first real call is not slow."""
    for g, p in product(("\\frac{1}{2}", "(1,2]"), ("0.5", "x^2")):
        compare(g, p)
    _PARSED.clear()
