"""The problem kinds: family, difficulty, wordings, how parameters are drawn, and the solver.

Templates are ``str.format`` strings over a kind's parameters plus the extra fields its ``text``
function derives (``{expr}``, ``{eq}``...). Every kind has at least three wordings.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thor.data.synthetic import solvers as S

__all__ = ["KINDS", "TEMPLATES", "Kind"]

Params = dict[str, Any]


def _no_text(p: Params) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Kind:
    """One kind of problem.

    Attributes:
        name: unique name (``mul4``).
        family: its family.
        difficulty: 1 to 5.
        draw: draws parameters from a ``random.Random``.
        solve: the exact answer and the worked steps.
        symmetric: parameters whose order does not change the problem (sorted in the canonical
            form); a single list parameter is sorted itself.
        text: extra template fields derived from the parameters.
    """

    name: str
    family: str
    difficulty: int
    draw: Callable[[random.Random], Params]
    solve: Callable[[Params], S.Solved]
    symmetric: tuple[str, ...] = ()
    text: Callable[[Params], dict[str, str]] = _no_text

    @property
    def templates(self) -> tuple[str, ...]:
        return TEMPLATES[self.name]


# -- parameter draws -------------------------------------------------------------------------
_PRIMES = [p for p in range(11, 1000) if all(p % d for d in range(2, int(p**0.5) + 1))]
_SMALL_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29)
_NONZERO = [c for c in range(-12, 13) if c]


def _digits(rng: random.Random, n: int) -> int:
    return rng.randint(10 ** (n - 1), 10**n - 1)


def _terms(count: tuple[int, int], digits: tuple[int, int]) -> Callable[[random.Random], Params]:
    def draw(rng: random.Random) -> Params:
        return {"terms": [_digits(rng, rng.randint(*digits)) for _ in range(rng.randint(*count))]}

    return draw


def _pair(digits: int) -> Callable[[random.Random], Params]:
    return lambda rng: {"a": _digits(rng, digits), "b": _digits(rng, digits)}


def _sub(rng: random.Random) -> Params:
    a = _digits(rng, 4)
    return {"a": a, "b": rng.randint(100, a - 1)}


def _word(rng: random.Random) -> Params:
    letters = rng.sample("ABCDEFGHIJKLMNOPRSTUVWXYZ", rng.randint(2, 4))
    counts = [rng.randint(1, 4) for _ in letters]
    if max(counts) == 1:
        counts[0] = 2
    chars = [c for c, k in zip(letters, counts, strict=True) for _ in range(k)]
    rng.shuffle(chars)
    word = "".join(chars)
    return {"word": word, "counts": sorted(word.count(c) for c in set(word))}


def _divisors(rng: random.Random) -> Params:
    n = 1
    for p in rng.sample(_SMALL_PRIMES, rng.randint(2, 4)):
        n *= p ** rng.randint(1, 4 if p < 7 else 2)
    return {"n": n}


def _system(rng: random.Random) -> Params:
    while True:
        coef = [rng.choice([c for c in range(-9, 10) if c]) for _ in range(4)]
        if coef[0] * coef[3] - coef[2] * coef[1]:
            return {"coef": coef, "x": rng.randint(-15, 15), "y": rng.randint(-15, 15)}


def _linear(rng: random.Random) -> Params:
    a, c = rng.sample(_NONZERO, 2)
    return {"a": a, "b": rng.randint(-50, 50), "c": c, "d": rng.randint(-50, 50)}


def _gcd_pair(rng: random.Random) -> Params:
    g = rng.randint(2, 60)
    x, y = rng.sample(range(2, 61), 2)
    while math.gcd(x, y) != 1:
        x, y = rng.sample(range(2, 61), 2)
    return {"a": g * x, "b": g * y}


def _draws() -> dict[str, Callable[[random.Random], Params]]:
    return {
        "div": lambda g: {"q": _digits(g, 3), "b": _digits(g, 2)},
        "powmod": lambda g: {
            "a": g.randint(2, 99),
            "e": g.randint(20, 999),
            "n": g.randint(7, 999),
        },
        "inverse": lambda g: (lambda m: {"a": g.randint(2, m - 1), "m": m})(g.choice(_PRIMES)),
        "remainder": lambda g: {**{k: _digits(g, 3) for k in "abc"}, "n": g.randint(7, 99)},
        "binomial": lambda g: (lambda n: {"n": n, "k": g.randint(2, n // 2)})(g.randint(10, 40)),
        "together": lambda g: (lambda n: {"n": n, "k": g.randint(2, min(5, n - 2))})(
            g.randint(5, 14)
        ),
        "apart": lambda g: {"n": g.randint(4, 16)},
        "committee": lambda g: (
            lambda m: {"men": m, "women": g.randint(3, 12), "k": g.randint(2, min(6, m))}
        )(g.randint(3, 12)),
        "lcm": lambda g: dict(zip("ab", g.sample(range(6, 301), 2), strict=True)),
        "digitsum": lambda g: {"a": g.randint(2, 9), "e": g.randint(10, 80)},
        "quadratic": lambda g: {
            "a": g.randint(1, 4),
            **dict(zip(("r1", "r2"), g.sample(range(-15, 16), 2), strict=True)),
        },
        "arith": lambda g: {"a": g.randint(1, 50), "d": g.randint(1, 20), "n": g.randint(10, 100)},
        "geom": lambda g: {"a": g.randint(1, 9), "r": g.randint(2, 5), "n": g.randint(5, 15)},
        "powers": lambda g: {"n": g.randint(10, 300), "e": g.randint(2, 3)},
        "telescoping": lambda g: {"n": g.randint(5, 999)},
    }


# -- extra template fields ---------------------------------------------------------------------
def _sum_text(p: Params) -> dict[str, str]:
    t = [str(x) for x in p["terms"]]
    return {"expr": " + ".join(t), "listed": ", ".join(t[:-1]) + " and " + t[-1]}


def _lin_text(p: Params) -> dict[str, str]:
    return {"lhs": S.linear_text(p["a"], p["b"]), "rhs": S.linear_text(p["c"], p["d"])}


_D = _draws()
KINDS: tuple[Kind, ...] = (
    Kind("add2", "arithmetic", 1, _terms((2, 2), (2, 2)), S.solve_sum, ("terms",), _sum_text),
    Kind("add", "arithmetic", 2, _terms((2, 3), (3, 4)), S.solve_sum, ("terms",), _sum_text),
    Kind("sub", "arithmetic", 2, _sub, S.solve_sub),
    Kind("mul2", "arithmetic", 2, _pair(2), S.solve_mul, ("a", "b")),
    Kind("mul3", "arithmetic", 3, _pair(3), S.solve_mul, ("a", "b")),
    Kind("mul4", "arithmetic", 4, _pair(4), S.solve_mul, ("a", "b")),
    Kind("div", "arithmetic", 3, _D["div"], S.solve_div, (), lambda p: {"prod": str(p["q"] * p["b"])}),
    Kind("powmod", "modular", 4, _D["powmod"], S.solve_powmod),
    Kind("inverse", "modular", 5, _D["inverse"], S.solve_inverse, (), lambda p: {"m1": str(p["m"] - 1)}),
    Kind("remainder", "modular", 3, _D["remainder"], S.solve_remainder, ("a", "b", "c")),
    Kind("binomial", "combinatorics", 3, _D["binomial"], S.solve_binomial),
    Kind("together", "combinatorics", 4, _D["together"], S.solve_together),
    Kind("apart", "combinatorics", 4, _D["apart"], S.solve_apart),
    Kind("word", "combinatorics", 4, _word, S.solve_word),
    Kind("committee", "combinatorics", 4, _D["committee"], S.solve_committee),
    Kind("gcd", "number_theory", 2, _gcd_pair, lambda p: S.solve_gcd_lcm(p, "gcd"), ("a", "b")),
    Kind("lcm", "number_theory", 3, _D["lcm"], lambda p: S.solve_gcd_lcm(p, "lcm"), ("a", "b")),
    Kind("digitsum", "number_theory", 3, _D["digitsum"], S.solve_digitsum),
    Kind("divisors", "number_theory", 4, _divisors, S.solve_divisors),
    Kind("linear", "equations", 2, _linear, S.solve_linear, (), _lin_text),
    Kind("quadratic", "equations", 3, _D["quadratic"], S.solve_quadratic, ("r1", "r2"), S.quadratic_text),
    Kind("system", "equations", 4, _system, S.solve_system, (), S.system_text),
    Kind("arith", "series", 2, _D["arith"], S.solve_arith, (),
         lambda p: {"a2": str(p["a"] + p["d"]), "a3": str(p["a"] + 2 * p["d"])}),
    Kind("geom", "series", 3, _D["geom"], S.solve_geom, (), lambda p: {"n1": str(p["n"] - 1)}),
    Kind("powers", "series", 3, _D["powers"], S.solve_powers, (),
         lambda p: {"pw": "squares" if p["e"] == 2 else "cubes"}),
    Kind("telescoping", "series", 4, _D["telescoping"], S.solve_telescoping, (), lambda p: {"n2": str(p["n"] + 1)}),
)  # fmt: skip
"""Every problem kind, in a fixed order (part of the generator's determinism)."""

TEMPLATES: dict[str, tuple[str, ...]] = {
    "add2": (
        "What is {expr}?",
        "Compute {expr}.",
        "Find the sum of {listed}.",
        "A shop sold {listed} items on two days. How many items did it sell in total?",
    ),
    "add": (
        "What is {expr}?",
        "Calculate the sum {expr}.",
        "Add {listed}.",
        "The warehouses of a company hold {listed} boxes. How many boxes are there altogether?",
    ),
    "sub": (
        "What is {a} - {b}?",
        "Compute {a} minus {b}.",
        "Subtract {b} from {a}.",
        "A tank holds {a} litres and {b} litres are drained. How many litres remain?",
    ),
    "mul2": ("What is {a} × {b}?", "Compute {a} * {b}.", "Find the product of {a} and {b}."),
    "mul3": (
        "What is {a} × {b}?",
        "Multiply {a} by {b}.",
        "Find the product of {a} and {b}.",
        "A crate holds {a} bolts. How many bolts are in {b} crates?",
    ),
    "mul4": (
        "What is {a} × {b}?",
        "Compute the product {a} · {b}.",
        "Multiply {a} by {b}.",
        "A factory makes {a} parts a day. How many parts does it make in {b} days?",
    ),
    "div": (
        "What is {prod} ÷ {b}?",
        "Divide {prod} by {b}.",
        "Compute {prod} / {b}; the result is a whole number.",
    ),
    "powmod": (
        "What is the remainder when {a}^{e} is divided by {n}?",
        "Compute ${a}^{{{e}}} \\bmod {n}$.",
        "Find $r$ with $0 \\le r < {n}$ and ${a}^{{{e}}} \\equiv r \\pmod{{{n}}}$.",
    ),
    "inverse": (
        "Find the inverse of {a} modulo {m}, as an integer from 0 to {m1}.",
        "Find $x$ with $0 \\le x < {m}$ such that ${a}x \\equiv 1 \\pmod{{{m}}}$.",
        "What is the multiplicative inverse of {a} mod {m}?",
    ),
    "remainder": (
        "What is the remainder when {a} × {b} × {c} is divided by {n}?",
        "Compute $({a} \\cdot {b} \\cdot {c}) \\bmod {n}$.",
        "Find the remainder of the product of {a}, {b} and {c} modulo {n}.",
    ),
    "binomial": (
        "Compute $\\binom{{{n}}}{{{k}}}$.",
        "In how many ways can {k} students be chosen from a class of {n}?",
        "How many {k}-element subsets does a set with {n} elements have?",
    ),
    "together": (
        "{n} people stand in a row. In how many orders can they stand if {k} particular friends must "
        "stand next to each other?",
        "How many arrangements of {n} different books on a shelf keep {k} particular books together?",
        "In how many ways can {n} runners finish a race (no ties) if {k} teammates finish in "
        "consecutive places?",
    ),
    "apart": (
        "In how many ways can {n} people stand in a row if Alice and Bob must not stand next to each other?",
        "How many orders of {n} distinct cards keep two particular cards apart (not adjacent)?",
        "{n} children sit on a bench. In how many ways can they sit if two siblings refuse to sit together?",
    ),
    "word": (
        "How many distinct arrangements of the letters of {word} are there?",
        "In how many different ways can the letters of the string {word} be ordered?",
        "How many different strings can be made by rearranging all the letters of {word}?",
    ),
    "committee": (
        "A club has {men} men and {women} women. How many {k}-person committees include at least one woman?",
        "From {men} boys and {women} girls, a team of {k} is picked. How many teams have at least one girl?",
        "How many ways are there to choose {k} people from {men} men and {women} women with at least "
        "one woman among them?",
    ),
    "gcd": (
        "What is the greatest common divisor of {a} and {b}?",
        "Compute $\\gcd({a}, {b})$.",
        "Find the largest integer that divides both {a} and {b}.",
    ),
    "lcm": (
        "What is the least common multiple of {a} and {b}?",
        "Compute $\\operatorname{{lcm}}({a}, {b})$.",
        "Two lights blink every {a} and {b} seconds. They blink together now; after how many seconds "
        "do they next blink together?",
    ),
    "digitsum": (
        "What is the sum of the digits of ${a}^{{{e}}}$?",
        "Find the digit sum of {a}^{e}.",
        "Write {a}^{e} in decimal. What do its digits add up to?",
    ),
    "divisors": (
        "How many positive divisors does {n} have?",
        "Find the number of positive integer divisors of {n}.",
        "Count the positive integers that divide {n}.",
    ),
    "linear": (
        "Solve for $x$: ${lhs} = {rhs}$.",
        "Find $x$ if ${lhs} = {rhs}$.",
        "What value of x satisfies {lhs} = {rhs}?",
    ),
    "quadratic": (
        "What is the larger root of ${eq}$?",
        "Find the greatest solution of the equation ${eq}$.",
        "The equation ${eq}$ has two real roots. Which one is larger?",
    ),
    "system": (
        "If ${eq1}$ and ${eq2}$, what is $x + y$?",
        "Solve the system ${eq1}$, ${eq2}$ and give $x + y$.",
        "Real numbers x and y satisfy {eq1} and {eq2}. Find x + y.",
    ),
    "arith": (
        "What is the sum of the first {n} terms of the arithmetic sequence that starts at {a} with "
        "common difference {d}?",
        "Compute {a} + {a2} + {a3} + ... ({n} terms, each {d} more than the last).",
        "A worker saves {a} coins in the first week and {d} more each week than the week before. "
        "How many coins has the worker saved after {n} weeks?",
    ),
    "geom": (
        "What is the sum of the first {n} terms of the geometric sequence with first term {a} and "
        "ratio {r}?",
        "Compute $\\sum_{{k=0}}^{{{n1}}} {a} \\cdot {r}^k$.",
        "On day 1 a saver puts aside {a} coins, and each day puts aside {r} times as many as the day "
        "before. How many coins has the saver put aside after {n} days?",
    ),
    "powers": (
        "Compute $1^{e} + 2^{e} + \\cdots + {n}^{e}$.",
        "What is $\\sum_{{k=1}}^{{{n}}} k^{e}$?",
        "Find the sum of the {pw} of the integers from 1 to {n}.",
    ),
    "telescoping": (
        "Compute $\\sum_{{k=1}}^{{{n}}} \\frac{{1}}{{k(k+1)}}$.",
        "What is $\\frac{{1}}{{1 \\cdot 2}} + \\frac{{1}}{{2 \\cdot 3}} + \\cdots + "
        "\\frac{{1}}{{{n} \\cdot {n2}}}$?",
        "Find the exact value of the sum of 1/(k(k+1)) for k from 1 to {n}, as a fraction.",
    ),
}
"""Wordings per kind (``str.format`` strings; literal braces doubled)."""
