r"""A critic without a model: it recognises computations in the step's text and codes them.

Made for the synthetic problems (:mod:`thor.data.synthetic`), whose solutions are multi-digit
arithmetic, modular arithmetic, binomials, gcds and equations, and usable on any text. Like every
critic it sees only the step. It recognises

- arithmetic expressions (``4821 × 3967``, ``6^{36}``, ``2^{10} - 1 = ...``, ``\frac{7}{3} + 2``),
- powers modulo n (``4^580 mod 201``, ``89^{-1} \bmod 349``) and remainders (``54522880 mod 16``),
- binomials (``C(39, 8)``, ``\binom{39}{8}``, ``39 choose 8``), ``gcd``/``lcm``, factorials,
  square roots,
- equations in one variable (``5x - 7 = 3x + 9``),

and inserts, after the line that holds each one, a python block that computes it and prints the
result (at most ``max_blocks`` per step). The step's text is never changed: the rewrite is the
step cut at line ends with code in between. Model text is never evaluated here: expressions are
only translated to python source and checked with :func:`ast.parse`; the sandbox runs them.

Example:
    >>> critic = RuleCritic()
    >>> r = critic.rewrite("The product is 463 × 920 = 425960.\nSo we are done.\n")
    >>> r.status, r.blocks
    ('code', ['print(463 * 920)'])
    >>> critic.rewrite("Let us think about the problem.\n").status
    'no_code'
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass

from thor.data.tirgen.critic import CriticResult
from thor.data.tirgen.text import Part

__all__ = ["RuleCritic"]

_INT = r"\d{1,3}(?:,\d{3})+(?!\d)|\d+"
_MAX_EXPONENT = 100_000
_MAX_DIGITS = 80


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    code: str


def _int(s: str) -> int:
    return int(s.replace(",", ""))


# -- specialised patterns: each gives python source for a match, or None --------------------------

_POWMOD = re.compile(
    r"(\d+)\s*\^\s*\{?\s*\(?\s*(-?\d+)\s*\)?\s*\}?\s*"
    r"(?:\\pmod\s*\{?|\\bmod|\\mod|\(\s*mod|\bmod(?:ulo)?|%)\s*\{?\s*(\d+)"
)
_MOD = re.compile(rf"({_INT})\s*(?:\\bmod|\\mod|\bmod(?:ulo)?|%)\s*\{{?\s*(\d+)")
_BINOM = re.compile(
    r"\\d?binom\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}"
    r"|\bC\(\s*(\d+)\s*,\s*(\d+)\s*\)"
    r"|\b(\d+)\s+choose\s+(\d+)"
    r"|\{\s*(\d+)\s*\\choose\s*(\d+)\s*\}"
)
_GCD = re.compile(r"\\?\b(gcd|lcm)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", re.IGNORECASE)
_FACT = re.compile(r"(?<![\d.])(\d{1,3})\s*!(?!=)")
_SQRT = re.compile(r"\\sqrt\s*\{\s*(\d+)\s*\}")


def _code_powmod(m: re.Match[str]) -> str | None:
    a, b, n = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if n < 2 or b < -1:
        return None
    return f"print(pow({a}, {b}, {n}))"


def _code_mod(m: re.Match[str]) -> str | None:
    a, n = _int(m.group(1)), int(m.group(2))
    if n < 2 or a < 10:
        return None
    return f"print({a} % {n})"


def _code_binom(m: re.Match[str]) -> str | None:
    nums = [int(g) for g in m.groups() if g is not None]
    n, k = nums[0], nums[1]
    if k > n or n > 10_000:
        return None
    return f"import math\nprint(math.comb({n}, {k}))"


def _code_gcd(m: re.Match[str]) -> str | None:
    fn = m.group(1).lower()
    return f"import math\nprint(math.{fn}({int(m.group(2))}, {int(m.group(3))}))"


def _code_fact(m: re.Match[str]) -> str | None:
    n = int(m.group(1))
    if not 4 <= n <= 500:
        return None
    return f"import math\nprint(math.factorial({n}))"


def _code_sqrt(m: re.Match[str]) -> str | None:
    n = int(m.group(1))
    if n < 2:
        return None
    return f"import sympy\nprint(sympy.sqrt({n}))"


_SPECIAL: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str | None]], ...] = (
    (_POWMOD, _code_powmod),
    (_MOD, _code_mod),
    (_BINOM, _code_binom),
    (_GCD, _code_gcd),
    (_FACT, _code_fact),
    (_SQRT, _code_sqrt),
)

# -- equations in one variable -------------------------------------------------------------------

_VARS = "xynkmtz"
_SIDE = rf"(?:\\cdot|[0-9{_VARS}+\-−*/^(). ])+"
_EQUATION = re.compile(rf"(?<![A-Za-z\\])({_SIDE})=({_SIDE})(?![A-Za-z])")


def _py_side(side: str, var: str) -> str | None:
    s = side.strip().rstrip(".").strip()
    s = s.replace("\\cdot", "*").replace("−", "-").replace("^", "**")
    s = re.sub(rf"(\d)\s*({var}|\()", r"\1*\2", s)
    s = re.sub(rf"({var}|\))\s*(\(|\d)", r"\1*\2", s)
    if not s:
        return None
    try:
        tree = ast.parse(s, mode="eval")
    except (SyntaxError, ValueError):
        return None
    ok = (
        ast.Expression,
        ast.BinOp,
        ast.UnaryOp,
        ast.Constant,
        ast.Name,
        ast.operator,
        ast.unaryop,
        ast.Load,
    )
    if not all(isinstance(n, ok) for n in ast.walk(tree)):
        return None
    return s


def _code_equation(lhs: str, rhs: str) -> str | None:
    letters = {c for c in lhs + rhs if c.isalpha()}
    if len(letters) != 1:
        return None
    var = letters.pop()
    left, right = _py_side(lhs, var), _py_side(rhs, var)
    if left is None or right is None:
        return None
    left, right = (
        re.sub(r"(?<![\w.])(\d+)\s*/\s*(\d+)(?![\w.])", r"sp.Rational(\1, \2)", x)
        for x in (left, right)
    )
    bare = re.compile(rf"^-?\s*(?:{var}|[\d.]+)$")
    if bare.match(left) and bare.match(right):  # "x = 5": a result, not an equation to solve
        return None
    if "**" in left + right and re.search(r"\*\*\s*\(?\s*(\d{2,}|[3-9])", left + right):
        return None  # keep to linear and quadratic equations
    return (
        f"import sympy as sp\n{var} = sp.symbols('{var}')\n"
        f"print(sp.solve(sp.Eq({left}, {right}), {var}))"
    )


# -- plain arithmetic ----------------------------------------------------------------------------

_RUN = re.compile(
    r"(?:\\frac\s*\{\s*\d+\s*\}\s*\{\s*\d+\s*\}|\\times|\\cdot|\\div|\\left|\\right|[0-9.,+\-−*/×·÷^(){} \t])+"
)
_OPS = {"\\times": "*", "\\cdot": "*", "×": "*", "·": "*", "\\div": "/", "÷": "/", "−": "-"}


def _py_arith(expr: str) -> str | None:
    s = re.sub(r"\\frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}", r"(\1/\2)", expr)
    for k, v in _OPS.items():
        s = s.replace(k, v)
    s = re.sub(r"\^\s*\{\s*(\d+)\s*\}", r"^\1", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("{", "(").replace("}", ")")
    s = re.sub(r"\d{1,3}(?:,\d{3})+(?!\d)", lambda m: m.group(0).replace(",", ""), s)
    s = s.replace("^", "**").strip(" \t.+-*/,")
    s = re.sub(r"(\d|\))\s*\(", r"\1*(", s)  # implicit multiplication: 4(x + 1), (a)(b)
    while s.count("(") != s.count(")"):
        if s.startswith("(") and s.count("(") > s.count(")"):
            s = s[1:].strip()
        elif s.endswith(")") and s.count(")") > s.count("("):
            s = s[:-1].strip()
        else:
            return None
    if "," in s or not s:
        return None
    try:
        tree = ast.parse(s, mode="eval")
    except (SyntaxError, ValueError):
        return None
    if not _safe_arith(tree):
        return None
    return s


def _safe_arith(tree: ast.Expression) -> bool:
    nums = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    ops = [n.op for n in ast.walk(tree) if isinstance(n, ast.BinOp)]
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.operator, ast.unaryop)
    if not ops or not all(isinstance(n, allowed) for n in ast.walk(tree)):
        return False
    numbers = [v for v in nums if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != len(nums):
        return False
    for n in ast.walk(tree):  # no runaway powers: the sandbox would time out
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow):
            exp = n.right
            if not isinstance(exp, ast.Constant) or not isinstance(exp.value, int | float):
                return False
            if abs(exp.value) > _MAX_EXPONENT:
                return False
    if sum(len(str(v)) for v in numbers) > _MAX_DIGITS:
        return False
    has_pow = any(isinstance(o, ast.Pow) for o in ops)
    return has_pow or any(abs(v) >= 10 for v in numbers)  # skip single-digit sums: trivial


def _code_arith(expr: str, followed_by_eq: bool) -> str | None:
    py = _py_arith(expr)
    if py is None:
        return None
    if not (followed_by_eq or "*" in py):
        return None  # "1-100" or "3/4" in prose: not a computation to run
    if "/" in py and "." not in py:
        body = re.sub(r"(?<!\*\*)(?<![\w.])\d+(?![\w.])", lambda m: f"Fraction({m.group(0)})", py)
        return f"from fractions import Fraction\nprint({body})"
    return f"print({py})"


class RuleCritic:
    """A rule-based critic: codes the computations it recognises in a step's text.

    Args:
        max_blocks: at most this many blocks per step (THOR: at most 5 executions per step).

    Example:
        >>> r = RuleCritic().rewrite("We need 4^580 mod 201.\\nThen C(39, 8) ways.\\n")
        >>> r.blocks
        ['print(pow(4, 580, 201))', 'import math\\nprint(math.comb(39, 8))']
    """

    name = "rule"

    def __init__(self, max_blocks: int = 5) -> None:
        self.max_blocks = max_blocks

    def find(self, step: str) -> list[_Hit]:
        """The computations in ``step``, in text order (deduplicated, at most ``max_blocks``)."""
        hits: list[_Hit] = []
        taken: list[tuple[int, int]] = []

        def free(a: int, b: int) -> bool:
            return all(b <= s or a >= e for s, e in taken)

        def add(a: int, b: int, code: str | None) -> None:
            if code is not None and free(a, b):
                hits.append(_Hit(a, b, code))
                taken.append((a, b))

        for pattern, make in _SPECIAL:
            for m in pattern.finditer(step):
                add(m.start(), m.end(), make(m))
        for m in _EQUATION.finditer(step):
            if free(m.start(), m.end()):
                add(m.start(), m.end(), _code_equation(m.group(1), m.group(2)))
        for m in _RUN.finditer(step):
            if not free(m.start(), m.end()):
                continue
            after = step[m.end() :].lstrip(" \t$\\)]")
            add(m.start(), m.end(), _code_arith(m.group(0), after.startswith("=")))
        seen: set[str] = set()
        out: list[_Hit] = []
        for h in sorted(hits, key=lambda h: h.start):
            if h.code not in seen:
                seen.add(h.code)
                out.append(h)
        return out[: self.max_blocks]

    def rewrite(self, step: str) -> CriticResult:
        hits = self.find(step)
        if not hits:
            return CriticResult(status="no_code")
        parts: list[Part] = []
        pos = 0
        for h in hits:
            nl = step.find("\n", h.end)
            cut = len(step) if nl < 0 else nl + 1
            if cut > pos:
                parts.append(Part(kind="text", text=step[pos:cut]))
                pos = cut
            parts.append(Part(kind="code", text=h.code))
        if pos < len(step):
            parts.append(Part(kind="text", text=step[pos:]))
        return CriticResult(status="code", parts=parts)
