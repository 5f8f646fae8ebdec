"""Solvers of the synthetic problem kinds: the answer and a worked solution from the parameters.

Every step that computes carries a self-contained python snippet that prints exactly the step's
``value`` (the tests run each one). Values are computed here in plain python, not by running the
snippets, so generating problems is fast.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from thor.data.synthetic.schema import SolutionStep

Solved = tuple[int | Fraction, list[SolutionStep]]
"""A solver's result: the exact answer and the steps."""


def _s(text: str, code: str | None = None, value: object = None) -> SolutionStep:
    return SolutionStep(text=text, code=code, value=None if value is None else str(value))


def _p(v: int) -> str:
    """A number as it reads inside an expression: negatives in parentheses."""
    return f"({v})" if v < 0 else str(v)


# -- arithmetic --------------------------------------------------------------------------------
def solve_sum(p: dict[str, Any]) -> Solved:
    terms = p["terms"]
    total = sum(terms)
    expr = " + ".join(map(str, terms))
    return total, [_s(f"Adding the numbers: {expr} = {total}.", f"print({expr})", total)]


def solve_sub(p: dict[str, Any]) -> Solved:
    a, b = p["a"], p["b"]
    return a - b, [_s(f"Subtracting: {a} - {b} = {a - b}.", f"print({a} - {b})", a - b)]


def solve_mul(p: dict[str, Any]) -> Solved:
    a, b = p["a"], p["b"]
    digits = str(b)
    parts = [int(d) * 10 ** (len(digits) - 1 - i) for i, d in enumerate(digits) if d != "0"]
    steps = [_s(f"Split {b} by place value: {' + '.join(map(str, parts))}.")]
    for part in parts:
        steps.append(_s(f"{a} × {part} = {a * part}.", f"print({a} * {part})", a * part))
    partials = " + ".join(str(a * part) for part in parts)
    steps.append(
        _s(f"Adding the partial products: {partials} = {a * b}.", f"print({partials})", a * b)
    )
    return a * b, steps


def solve_div(p: dict[str, Any]) -> Solved:
    a, b = p["q"] * p["b"], p["b"]
    return p["q"], [
        _s(f"Long division of {a} by {b} leaves no remainder.", f"print({a} % {b})", 0),
        _s(f"So {a} ÷ {b} = {a // b}.", f"print({a} // {b})", a // b),
    ]


# -- modular -----------------------------------------------------------------------------------
def solve_powmod(p: dict[str, Any]) -> Solved:
    a, e, n = p["a"], p["e"], p["n"]
    r = pow(a, e, n)
    return r, [
        _s(f"Reduce the base first: {a} mod {n} = {a % n}.", f"print({a} % {n})", a % n),
        _s(
            f"Square and multiply modulo {n}: {a}^{e} mod {n} = {r}.",
            f"print(pow({a}, {e}, {n}))",
            r,
        ),
    ]


def solve_inverse(p: dict[str, Any]) -> Solved:
    a, m = p["a"], p["m"]
    r = pow(a, -1, m)
    q = a * r // m
    return r, [
        _s(
            f"The inverse exists because gcd({a}, {m}) = 1.",
            f"import math\nprint(math.gcd({a}, {m}))",
            1,
        ),
        _s(
            f"The extended Euclidean algorithm finds {a} × {r} = {a * r} = {q} × {m} + 1.",
            f"print({a} * {r})",
            a * r,
        ),
        _s(f"So {a}^(-1) mod {m} = {r}.", f"print(pow({a}, -1, {m}))", r),
    ]


def solve_remainder(p: dict[str, Any]) -> Solved:
    a, b, c, n = p["a"], p["b"], p["c"], p["n"]
    prod, r = a * b * c, a * b * c % n
    return r, [
        _s(f"The product is {a} × {b} × {c} = {prod}.", f"print({a} * {b} * {c})", prod),
        _s(f"Its remainder modulo {n} is {r}.", f"print({prod} % {n})", r),
    ]


# -- combinatorics -----------------------------------------------------------------------------
def solve_binomial(p: dict[str, Any]) -> Solved:
    n, k = p["n"], p["k"]
    r = math.comb(n, k)
    return r, [
        _s(
            f"C({n}, {k}) = {n}! / ({k}! {n - k}!) = {r}.",
            f"import math\nprint(math.comb({n}, {k}))",
            r,
        )
    ]


def solve_together(p: dict[str, Any]) -> Solved:
    n, k = p["n"], p["k"]
    blocks, inner = math.factorial(n - k + 1), math.factorial(k)
    return blocks * inner, [
        _s(
            f"Treat the {k} that must be adjacent as one block: {n - k + 1} units, {blocks} orders.",
            f"import math\nprint(math.factorial({n - k + 1}))",
            blocks,
        ),
        _s(
            f"Inside the block they can be ordered in {k}! = {inner} ways.",
            f"import math\nprint(math.factorial({k}))",
            inner,
        ),
        _s(
            f"In total {blocks} × {inner} = {blocks * inner}.",
            f"print({blocks} * {inner})",
            blocks * inner,
        ),
    ]


def solve_apart(p: dict[str, Any]) -> Solved:
    n = p["n"]
    total, together = math.factorial(n), 2 * math.factorial(n - 1)
    return total - together, [
        _s(
            f"Without restriction there are {n}! = {total} orders.",
            f"import math\nprint(math.factorial({n}))",
            total,
        ),
        _s(
            f"The two are adjacent in 2 × {n - 1}! = {together} of them.",
            f"import math\nprint(2 * math.factorial({n - 1}))",
            together,
        ),
        _s(
            f"So {total} - {together} = {total - together} keep them apart.",
            f"print({total} - {together})",
            total - together,
        ),
    ]


def solve_word(p: dict[str, Any]) -> Solved:
    counts = p["counts"]
    n = sum(counts)
    den = math.prod(math.factorial(c) for c in counts)
    r = math.factorial(n) // den
    facts = " × ".join(f"{c}!" for c in counts)
    return r, [
        _s(
            f"There are {n} letters, so {n}! = {math.factorial(n)} orders if all were different.",
            f"import math\nprint(math.factorial({n}))",
            math.factorial(n),
        ),
        _s(
            f"Divide by {facts} = {den} for the repeated letters: {r}.",
            f"import math\nprint(math.factorial({n}) // math.prod(math.factorial(c) for c in {counts}))",
            r,
        ),
    ]


def solve_committee(p: dict[str, Any]) -> Solved:
    m, w, k = p["men"], p["women"], p["k"]
    total, none = math.comb(m + w, k), math.comb(m, k)
    return total - none, [
        _s(
            f"Any {k} of the {m + w} people: C({m + w}, {k}) = {total}.",
            f"import math\nprint(math.comb({m + w}, {k}))",
            total,
        ),
        _s(
            f"Committees with no woman: C({m}, {k}) = {none}.",
            f"import math\nprint(math.comb({m}, {k}))",
            none,
        ),
        _s(
            f"At least one woman: {total} - {none} = {total - none}.",
            f"print({total} - {none})",
            total - none,
        ),
    ]


# -- number theory -----------------------------------------------------------------------------
def solve_gcd_lcm(p: dict[str, Any], op: str) -> Solved:
    a, b = p["a"], p["b"]
    r = math.gcd(a, b) if op == "gcd" else math.lcm(a, b)
    name = "greatest common divisor" if op == "gcd" else "least common multiple"
    return r, [
        _s(f"Factor: {a} = {product_text(a)}.", _factor_code(a), factor_text(a)),
        _s(f"Factor: {b} = {product_text(b)}.", _factor_code(b), factor_text(b)),
        _s(f"The {name} is {r}.", f"import math\nprint(math.{op}({a}, {b}))", r),
    ]


def _factors(n: int) -> dict[int, int]:
    f: dict[int, int] = {}
    d, m = 2, n
    while d * d <= m:
        while m % d == 0:
            f[d] = f.get(d, 0) + 1
            m //= d
        d += 1
    if m > 1:
        f[m] = f.get(m, 0) + 1
    return f


def _factor_code(n: int) -> str:
    return f"import sympy\nprint(sympy.factorint({n}))"


def factor_text(n: int) -> str:
    """The prime factorisation as ``sympy.factorint`` prints it: ``{2: 3, 5: 1}``."""
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(_factors(n).items())) + "}"


def product_text(n: int) -> str:
    """The prime factorisation as a person writes it: ``2^3 · 5``."""
    return " · ".join(str(k) if v == 1 else f"{k}^{v}" for k, v in sorted(_factors(n).items()))


def solve_digitsum(p: dict[str, Any]) -> Solved:
    a, e = p["a"], p["e"]
    big = a**e
    r = sum(int(d) for d in str(big))
    return r, [
        _s(f"{a}^{e} = {big}.", f"print({a} ** {e})", big),
        _s(f"Its digits add up to {r}.", f"print(sum(int(d) for d in str({a} ** {e})))", r),
    ]


def solve_divisors(p: dict[str, Any]) -> Solved:
    n = p["n"]
    exps = list(_factors(n).values())
    r = math.prod(e + 1 for e in exps)
    plus = " × ".join(f"({e} + 1)" for e in exps)
    return r, [
        _s(f"Factor: {n} = {product_text(n)}.", _factor_code(n), factor_text(n)),
        _s(
            f"Multiply one more than each exponent: {plus} = {r} divisors.",
            f"import sympy\nprint(sympy.divisor_count({n}))",
            r,
        ),
    ]


# -- equations ---------------------------------------------------------------------------------
def linear_text(a: int, b: int, var: str = "x") -> str:
    head = {1: var, -1: f"-{var}"}.get(a, f"{a}{var}")
    return head if b == 0 else f"{head} {'+' if b > 0 else '-'} {abs(b)}"


def solve_linear(p: dict[str, Any]) -> Solved:
    a, b, c, d = p["a"], p["b"], p["c"], p["d"]
    k, m = a - c, d - b
    x = Fraction(m, k)
    code = f"from fractions import Fraction\nprint(Fraction({m}, {k}))"
    return x, [
        _s(
            f"Collect the x terms on the left: the coefficient is {a} - {_p(c)} = {k}.",
            f"print({a} - ({c}))",
            k,
        ),
        _s(f"Collect the constants on the right: {d} - {_p(b)} = {m}.", f"print({d} - ({b}))", m),
        _s(f"Dividing, x = {m} / {_p(k)} = {x}.", code, x),
    ]


def quadratic_text(p: dict[str, Any]) -> dict[str, str]:
    a, r, s = p["a"], p["r1"], p["r2"]
    b, c = -a * (r + s), a * r * s
    lead = {1: "x^2", -1: "-x^2"}.get(a, f"{a}x^2")
    lin = "" if b == 0 else f" {'+' if b > 0 else '-'} {linear_text(abs(b), 0)}"
    const = "" if c == 0 else f" {'+' if c > 0 else '-'} {abs(c)}"
    return {"eq": f"{lead}{lin}{const} = 0"}


def solve_quadratic(p: dict[str, Any]) -> Solved:
    a, r, s = p["a"], p["r1"], p["r2"]
    b, c = -a * (r + s), a * r * s
    roots = sorted([r, s])
    code = f"import sympy as sp\nx = sp.symbols('x')\nprint(sorted(sp.solve({a}*x**2 + ({b})*x + ({c}), x)))"
    return roots[1], [
        _s(f"Solving the quadratic gives the roots {roots[0]} and {roots[1]}.", code, roots),
        _s(f"The larger root is {roots[1]}.", f"print(max({roots}))", roots[1]),
    ]


def system_text(p: dict[str, Any]) -> dict[str, str]:
    (a1, b1, a2, b2), x, y = p["coef"], p["x"], p["y"]

    def eq(a: int, b: int) -> str:
        return f"{linear_text(a, 0)} {'+' if b > 0 else '-'} {linear_text(abs(b), 0, 'y')} = {a * x + b * y}"

    return {"eq1": eq(a1, b1), "eq2": eq(a2, b2)}


def solve_system(p: dict[str, Any]) -> Solved:
    (a1, b1, a2, b2), x, y = p["coef"], p["x"], p["y"]
    c1, c2 = a1 * x + b1 * y, a2 * x + b2 * y
    det = a1 * b2 - a2 * b1
    return x + y, [
        _s(
            f"The determinant is {_p(a1)}·{_p(b2)} - {_p(a2)}·{_p(b1)} = {det}.",
            f"print({a1} * {b2} - {a2} * {b1})",
            det,
        ),
        _s(f"By Cramer's rule x = {x}.", f"print(({c1} * {b2} - {c2} * {b1}) // {det})", x),
        _s(f"And y = {y}.", f"print(({a1} * {c2} - {a2} * {c1}) // {det})", y),
        _s(f"So x + y = {x + y}.", f"print({x} + {y})", x + y),
    ]


# -- series ------------------------------------------------------------------------------------
def solve_arith(p: dict[str, Any]) -> Solved:
    a, d, n = p["a"], p["d"], p["n"]
    last, total = a + (n - 1) * d, n * (2 * a + (n - 1) * d) // 2
    return total, [
        _s(f"The last term is {a} + {n - 1} × {d} = {last}.", f"print({a} + {n - 1} * {d})", last),
        _s(
            f"The sum is {n} × ({a} + {last}) / 2 = {total}.",
            f"print(sum({a} + k * {d} for k in range({n})))",
            total,
        ),
    ]


def solve_geom(p: dict[str, Any]) -> Solved:
    a, r, n = p["a"], p["r"], p["n"]
    total = a * (r**n - 1) // (r - 1)
    return total, [
        _s(f"{r}^{n} = {r**n}.", f"print({r} ** {n})", r**n),
        _s(
            f"The sum is {a}({r}^{n} - 1)/({r} - 1) = {total}.",
            f"print(sum({a} * {r} ** k for k in range({n})))",
            total,
        ),
    ]


def solve_powers(p: dict[str, Any]) -> Solved:
    n, e = p["n"], p["e"]
    total = sum(k**e for k in range(1, n + 1))
    return total, [
        _s(
            f"Adding k^{e} for k = 1..{n} gives {total}.",
            f"print(sum(k ** {e} for k in range(1, {n} + 1)))",
            total,
        )
    ]


def solve_telescoping(p: dict[str, Any]) -> Solved:
    n = p["n"]
    total = Fraction(n, n + 1)
    code = f"from fractions import Fraction\nprint(sum(Fraction(1, k * (k + 1)) for k in range(1, {n} + 1)))"
    return total, [
        _s("Each term splits as 1/k - 1/(k+1), so the sum telescopes to 1 - 1/(n+1)."),
        _s(f"With n = {n} the sum is {total}.", code, total),
    ]
