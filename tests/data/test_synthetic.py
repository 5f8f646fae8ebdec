from __future__ import annotations

import contextlib
import io
import re
from collections import Counter, defaultdict
from fractions import Fraction
from functools import cache
from pathlib import Path

import pytest
import sympy as sp
from math_verify import parse
from sympy.parsing.sympy_parser import (
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

from thor.data import DATASETS, load_jsonl_problems, load_problems
from thor.data.synthetic import (
    FAMILIES,
    KINDS,
    SyntheticMeta,
    canonical_form,
    canonical_split,
    generate_problems,
    render_solution,
    write_problems_jsonl,
)
from thor.errors import ConfigError
from thor.text.protocol import find_code_blocks
from thor.types import Problem

BY_NAME = {k.name: k for k in KINDS}
ANSWER = re.compile(r"^-?\d+$|^-?\\frac\{\d+\}\{\d+\}$")


@cache
def _train() -> tuple[Problem, ...]:
    return tuple(generate_problems(3000, seed=0, split="train"))


@cache
def _heldout() -> tuple[Problem, ...]:
    return tuple(generate_problems(3000, seed=0, split="heldout"))


def _key(p: Problem) -> str:
    return canonical_form(BY_NAME[p.metadata["kind"]], p.metadata["params"])


def _value(answer: str) -> Fraction:
    m = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", answer)
    if m:
        return Fraction(int(m.group(2)), int(m.group(3))) * (-1 if m.group(1) else 1)
    return Fraction(answer)


def test_deterministic_per_seed_and_prefix_stable() -> None:
    a = generate_problems(150, seed=7)
    assert a == generate_problems(150, seed=7)
    assert a[:40] == generate_problems(40, seed=7)
    assert [p.id for p in a] != [p.id for p in generate_problems(150, seed=8)]


@pytest.mark.timeout(120)
def test_train_and_heldout_never_overlap() -> None:
    train, held = _train(), _heldout()
    k_train, k_held = {_key(p) for p in train}, {_key(p) for p in held}
    assert len(k_train) == len(train) and len(k_held) == len(held)  # distinct within a split
    assert not k_train & k_held
    assert not {p.problem for p in train} & {p.problem for p in held}
    assert not {p.id for p in train} & {p.id for p in held}
    assert all(canonical_split(k) == "train" for k in k_train)
    assert all(canonical_split(k) == "heldout" for k in k_held)
    # other seeds draw from the same two disjoint spaces
    other = generate_problems(1000, seed=99, split="heldout")
    assert not {_key(p) for p in other} & k_train


def test_canonical_form_is_order_free() -> None:
    mul = BY_NAME["mul4"]
    assert canonical_form(mul, {"a": 1234, "b": 5678}) == canonical_form(
        mul, {"a": 5678, "b": 1234}
    )
    add = BY_NAME["add"]
    assert canonical_form(add, {"terms": [3, 1, 2]}) == canonical_form(add, {"terms": [1, 2, 3]})
    word = BY_NAME["word"]
    assert canonical_form(word, {"word": "AAB", "counts": [1, 2]}) == canonical_form(
        word, {"word": "XYY", "counts": [1, 2]}
    )
    assert canonical_form(BY_NAME["sub"], {"a": 9, "b": 5}) != canonical_form(
        BY_NAME["sub"], {"a": 5, "b": 9}
    )


def _run(code: str) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(code, {"__name__": "__synthetic__"})  # trusted, generated code
    return buf.getvalue().strip()


X, Y, K = sp.symbols("x y k")
_T = (*standard_transformations, implicit_multiplication_application)


def _equation(text: str) -> sp.Eq:
    lhs, rhs = text.replace("^", "**").split("=")
    return sp.Eq(parse_expr(lhs, transformations=_T), parse_expr(rhs, transformations=_T))


def _math_in(text: str) -> list[str]:
    return re.findall(r"\$([^$]*)\$", text)


def _oracle(p: Problem) -> sp.Rational:
    """The answer recomputed independently with sympy from the parameters (and, for equations,
    from the equation as printed in the problem text)."""
    kind, q = p.metadata["kind"], p.metadata["params"]
    f = sp.factorial
    if kind in ("add2", "add"):
        return sp.Add(*[sp.Integer(t) for t in q["terms"]])
    simple = {
        "sub": lambda: sp.Integer(q["a"]) - q["b"],
        "mul2": lambda: sp.Integer(q["a"]) * q["b"],
        "mul3": lambda: sp.Integer(q["a"]) * q["b"],
        "mul4": lambda: sp.Integer(q["a"]) * q["b"],
        "div": lambda: sp.Integer(q["q"] * q["b"]) / q["b"],
        "powmod": lambda: sp.Mod(sp.Integer(q["a"]) ** q["e"], q["n"]),
        "inverse": lambda: sp.Integer(sp.mod_inverse(q["a"], q["m"])),
        "remainder": lambda: sp.Mod(sp.Integer(q["a"]) * q["b"] * q["c"], q["n"]),
        "binomial": lambda: sp.binomial(q["n"], q["k"]),
        "together": lambda: f(q["n"] - q["k"] + 1) * f(q["k"]),
        "apart": lambda: f(q["n"]) - 2 * f(q["n"] - 1),
        "word": lambda: f(sum(q["counts"])) / sp.Mul(*[f(c) for c in Counter(q["word"]).values()]),
        "committee": lambda: (
            sp.binomial(q["men"] + q["women"], q["k"]) - sp.binomial(q["men"], q["k"])
        ),
        "gcd": lambda: sp.gcd(q["a"], q["b"]),
        "lcm": lambda: sp.lcm(q["a"], q["b"]),
        "digitsum": lambda: sp.Integer(sum(sp.ntheory.digits(sp.Integer(q["a"]) ** q["e"])[1:])),
        "divisors": lambda: sp.divisor_count(q["n"]),
        "arith": lambda: sp.summation(q["a"] + K * q["d"], (K, 0, q["n"] - 1)),
        "geom": lambda: sp.summation(q["a"] * q["r"] ** K, (K, 0, q["n"] - 1)),
        "powers": lambda: sp.summation(K ** q["e"], (K, 1, q["n"])),
        "telescoping": lambda: sp.summation(1 / (K * (K + 1)), (K, 1, q["n"])),
    }
    if kind in simple:
        return sp.nsimplify(simple[kind]())
    if kind == "linear":
        eq = _equation(
            _math_in(p.problem)[-1] if "$" in p.problem else p.problem.split("satisfies ")[1][:-1]
        )
        return sp.solve(eq, X)[0]
    if kind == "quadratic":
        return max(sp.solve(_equation(_math_in(p.problem)[0]), X))
    if kind == "system":
        if "$" in p.problem:
            eqs = [e for e in _math_in(p.problem) if "=" in e]
        else:
            eqs = re.findall(r"satisfy (.*) and (.*)\. Find", p.problem)[0]
        sol = sp.solve([_equation(e) for e in eqs[:2]], [X, Y])
        return sol[X] + sol[Y]
    raise AssertionError(f"no oracle for kind {kind}")


def _check(probs: list[Problem]) -> None:
    for p in probs:
        meta = SyntheticMeta.model_validate(p.metadata)
        for step in meta.steps:
            if step.code is not None:
                assert _run(step.code) == step.value, (p.id, step)
            else:
                assert step.value is None
        assert meta.steps[-1].value is not None
        assert _value(meta.steps[-1].value) == _value(p.answer or ""), p.id
        assert ANSWER.match(p.answer or ""), p.answer
        v = _value(p.answer or "")
        assert sp.Rational(v.numerator, v.denominator) == _oracle(p), p.id


def _stratified(per_kind: int) -> list[Problem]:
    out: list[Problem] = []
    for probs in (_train(), _heldout()):
        taken: Counter[str] = Counter()
        for p in probs:
            if taken[p.metadata["kind"]] < per_kind:
                taken[p.metadata["kind"]] += 1
                out.append(p)
    return out


@pytest.mark.timeout(180)
def test_every_step_runs_and_every_answer_is_right() -> None:
    """Up to 10 problems of every kind in each split: each step's code prints its value, and the
    answer matches an independent sympy computation."""
    probs = _stratified(10)
    assert {p.metadata["kind"] for p in probs} == set(BY_NAME)
    _check(probs)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_step_runs_and_every_answer_is_right_on_all_6000() -> None:
    _check(list(_train()) + list(_heldout()))


def test_answers_are_what_the_verifier_parses() -> None:
    shapes = Counter()
    for p in _train()[:300]:
        parsed = parse(f"${p.answer}$")
        assert parsed, p.answer
        v = _value(p.answer or "")
        assert sp.nsimplify(parsed[0]) == sp.Rational(v.numerator, v.denominator), p.answer
        shapes["frac" if "frac" in (p.answer or "") else "int"] += 1
    assert shapes["frac"] > 0 and shapes["int"] > 0


def test_schema_and_shapes() -> None:
    for p in _train()[:500]:
        meta = SyntheticMeta.model_validate(p.metadata)
        assert p.source == "synthetic_train" and meta.split == "train"
        assert p.id.startswith(f"synthetic-train-{meta.kind}-")
        assert meta.family in FAMILIES and BY_NAME[meta.kind].family == meta.family
        assert meta.difficulty == BY_NAME[meta.kind].difficulty
        assert not re.search(r"(?<!operatorname)\{[a-z_]+\d?\}", p.problem), p.problem  # unfilled
        assert Problem.model_validate_json(p.model_dump_json()) == p
    with pytest.raises(ValueError):
        SyntheticMeta.model_validate({**_train()[0].metadata, "difficulty": 9})


def test_variety_of_wordings() -> None:
    assert all(len(k.templates) >= 3 for k in KINDS)
    used: dict[str, set[int]] = defaultdict(set)
    per_family: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for p in _train():
        used[p.metadata["kind"]].add(p.metadata["template"])
        per_family[p.metadata["family"]].add((p.metadata["kind"], p.metadata["template"]))
    counts = Counter(p.metadata["kind"] for p in _train())
    for kind, n in counts.items():
        if n >= 30:
            assert len(used[kind]) >= 3, kind
    assert all(len(per_family[f]) >= 9 for f in FAMILIES)
    assert len({p.problem for p in _train()}) == len(_train())


def test_difficulty_spans_from_two_digit_addition_to_tool_work() -> None:
    levels = {p.metadata["difficulty"] for p in _train()}
    assert levels == {1, 2, 3, 4, 5}
    easy = generate_problems(20, seed=0, difficulties=[1])
    assert {p.metadata["kind"] for p in easy} == {"add2"}
    assert all(len(str(t)) == 2 for p in easy for t in p.metadata["params"]["terms"])
    assert BY_NAME["mul4"].difficulty == BY_NAME["powmod"].difficulty == 4
    fam = generate_problems(30, seed=0, families=["modular", "series"])
    assert {p.metadata["family"] for p in fam} == {"modular", "series"}


def test_render_solution_is_a_tool_integrated_solution() -> None:
    p = next(p for p in _train() if p.metadata["kind"] == "mul4")
    plain = render_solution(p)
    assert "```" not in plain and plain.endswith(f"$\\boxed{{{p.answer}}}$.")
    tir = render_solution(p, with_code=True)
    steps = SyntheticMeta.model_validate(p.metadata).steps
    assert [b.code for b in find_code_blocks(tir)] == [s.code for s in steps if s.code]
    assert tir.count("```output\n") == sum(s.code is not None for s in steps)


def test_registered_datasets(tmp_path: Path) -> None:
    assert "synthetic_train" in DATASETS and "synthetic_heldout" in DATASETS
    assert load_problems("synthetic_train", limit=25) == generate_problems(25, seed=0)
    held = load_problems("synthetic_heldout", limit=10)
    assert all(p.source == "synthetic_heldout" for p in held)
    a = load_problems("synthetic_train", limit=5, shuffle_seed=1)
    assert a == load_problems("synthetic_train", limit=5, shuffle_seed=1)
    made = DATASETS.make("synthetic_train", n=40, seed=3, families=["series"])
    assert len(made) == 40 and {p.metadata["family"] for p in made} == {"series"}
    with pytest.raises(ConfigError, match="families"):
        DATASETS.make("synthetic_train", families=["seriess"])
    with pytest.raises(ConfigError, match="famillies"):
        DATASETS.make("synthetic_train", famillies=["series"])


def test_jsonl_round_trip(tmp_path: Path) -> None:
    probs = generate_problems(60, seed=5, split="heldout")
    path = write_problems_jsonl(probs, tmp_path / "out" / "heldout.jsonl")
    back = load_jsonl_problems(path)
    assert [(p.id, p.problem, p.answer, p.metadata) for p in back] == [
        (p.id, p.problem, p.answer, p.metadata) for p in probs
    ]
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_errors() -> None:
    with pytest.raises(ValueError, match="unknown families"):
        generate_problems(3, seed=0, families=["geometry"])
    with pytest.raises(ValueError, match="split"):
        generate_problems(3, seed=0, split="test")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no problem kind"):
        generate_problems(3, seed=0, families=["arithmetic"], difficulties=[5])
    with pytest.raises(ValueError, match="distinct"):
        generate_problems(
            100, seed=0, families=["combinatorics"], difficulties=[4], split="heldout"
        )
    assert generate_problems(0, seed=0) == []
