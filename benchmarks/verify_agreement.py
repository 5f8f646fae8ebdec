"""Agreement of thor's verifier with math-verify on math-verify's own test cases.

math-verify (Apache-2.0) ships its regression tests in its source distribution; this script reads
them from there at run time (nothing of them is stored in this repository)::

    pip download math-verify==0.9.0 --no-deps --no-binary :all: -d /tmp/mv
    tar -xzf /tmp/mv/math_verify-0.9.0.tar.gz -C /tmp/mv
    python benchmarks/verify_agreement.py /tmp/mv/math_verify-0.9.0

Every ``(gold, pred, expected)`` case of its parametrized tests is run three ways:

- math-verify itself, exactly as its test runs it (its extraction configs, precision, ``strict``,
  ``allow_set_relation_comp``): this is what math-verify 0.9 answers, which is not always what its
  test expects;
- thor, ``Verifier.verify_response(gold_answer, pred, mode=...)`` for each extraction mode, where
  ``gold_answer`` is the answer math-verify's extraction finds in the case's gold text
  (``Verifier.extract_answer(gold, mode="math_verify")``): thor's gold is a bare answer, as a
  benchmark's is.

It prints the counts (answers found, agreement with math-verify and with the tests' expectations,
false positives on the cases expected unequal) and every case where thor's ``math_verify`` mode
disagrees with math-verify, with the test it comes from and thor's reason.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thor.rewards import Verifier, VerifierConfig

MODES = ("boxed", "lenient", "math_verify")
TEST_MODULES = (
    "test_all",
    "test_boxed",
    "test_numina_cases",
    "test_open_thoughts",
    "test_strict",
    "test_yujianll",
)


@dataclass
class Case:
    test: str
    gold: str
    pred: str
    expected: bool
    options: dict[str, Any] = field(default_factory=dict)
    math_verify: bool | None = None
    math_verify_as_thor: bool | None = None
    gold_answer: str | None = None
    thor: dict[str, tuple[bool, str, str | None]] = field(default_factory=dict)


def load_cases(root: Path) -> list[Case]:
    """Every parametrized (gold, pred, expected) case of math-verify's tests."""
    sys.path.insert(0, str(root))
    cases: list[Case] = []
    for name in TEST_MODULES:
        module = importlib.import_module(f"tests.{name}")
        for fname in sorted(dir(module)):
            fn = getattr(module, fname)
            if not fname.startswith("test") or not callable(fn):
                continue
            for mark in getattr(fn, "pytestmark", []):
                if mark.name != "parametrize":
                    continue
                names = [n.strip() for n in mark.args[0].split(",")]
                for values in mark.args[1]:
                    row = dict(zip(names, values, strict=True))
                    expected = row.pop("expected", row.pop("result", None))
                    gold, pred = row.pop("gold"), row.pop("pred")
                    test = f"{name}.py::{fname}"
                    cases.append(Case(test, gold, pred, bool(expected), options=row))
    return cases


def math_verify_verdict(case: Case, *, as_thor: bool = False) -> bool:
    """What math-verify answers, configured as the case's own test configures it.

    ``as_thor``: configured as thor's ``math_verify`` mode instead (LaTeX with boxes first, then
    expressions; 6 decimals; strict; no set-relation comparison).
    """
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    if as_thor:
        configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
        return bool(verify(parse(case.gold, configs), parse(case.pred, configs)))
    if case.test.startswith("test_yujianll"):
        return bool(verify(parse(case.gold), parse(case.pred)))
    types = {
        "test_number_extraction": ["expr"],
        "test_latex_notation": ["latex"],
        "test_latex_notation_math": ["latex"],
        "test_relations_math": ["latex"],
        "test_matrix_extraction": ["latex"],
        "test_set_rel_assymetry": ["latex"],
    }.get(case.test.split("::")[1], ["latex", "expr"])
    configs = [
        LatexExtractionConfig(boxed_match_priority=0) if t == "latex" else ExprExtractionConfig()
        for t in types
    ]
    precision = case.options.get("precision", 5 if case.test.endswith("_precision") else 6)
    if case.test.endswith("test_symbols"):
        precision = 5
    return bool(
        verify(
            parse(case.gold, configs),
            parse(case.pred, configs),
            float_rounding=precision,
            strict=case.options.get("strict", True),
            allow_set_relation_comp=case.options.get("allow_set_relation_comp", False),
        )
    )


def run(cases: list[Case], verifier: Verifier) -> None:
    for case in cases:
        case.math_verify = math_verify_verdict(case)
        case.math_verify_as_thor = math_verify_verdict(case, as_thor=True)
        case.gold_answer = verifier.extract_answer(case.gold, mode="math_verify")
    usable = [c for c in cases if c.gold_answer is not None]
    for mode in MODES:
        verdicts = verifier.verify_response_batch(
            [(c.gold_answer or "", c.pred) for c in usable], mode=mode
        )
        for case, v in zip(usable, verdicts, strict=True):
            case.thor[mode] = (v.equal, v.reason, v.answer)


def report(cases: list[Case]) -> dict[str, Any]:
    usable = [c for c in cases if c.thor]
    pos = [c for c in usable if c.expected]
    neg = [c for c in usable if not c.expected]
    out: dict[str, Any] = {
        "cases": len(cases),
        "gold_without_answer": [c.test + " " + c.gold[:60] for c in cases if not c.thor],
        "expected_equal": len(pos),
        "expected_unequal": len(neg),
        "math_verify_matches_expected": sum(c.math_verify == c.expected for c in usable),
        "math_verify_equal_on_expected_equal": sum(bool(c.math_verify) for c in pos),
        "math_verify_false_positives": sum(bool(c.math_verify) for c in neg),
    }
    for mode in MODES:
        out[mode] = {
            "answer_found": sum(c.thor[mode][2] is not None for c in usable),
            "equal_on_expected_equal": sum(c.thor[mode][0] for c in pos),
            "false_positives": sum(c.thor[mode][0] for c in neg),
            "agrees_with_math_verify": sum(c.thor[mode][0] == c.math_verify for c in usable),
            "agrees_with_math_verify_configured_as_thor": sum(
                c.thor[mode][0] == c.math_verify_as_thor for c in usable
            ),
            "matches_expected": sum(c.thor[mode][0] == c.expected for c in usable),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="math-verify's unpacked source distribution")
    parser.add_argument("--json", type=Path, help="also write every case's verdicts here")
    args = parser.parse_args()
    cases = load_cases(args.root)
    with Verifier(VerifierConfig(workers=2, timeout_s=30.0)) as verifier:
        run(cases, verifier)
    print(json.dumps(report(cases), indent=1))
    print("\nthor (math_verify mode) and math-verify disagree on:")
    for c in cases:
        if c.thor and c.thor["math_verify"][0] != c.math_verify:
            equal, reason, answer = c.thor["math_verify"]
            print(
                f"- {c.test}: gold {c.gold[:70]!r} (thor's gold {c.gold_answer!r}), "
                f"pred {c.pred[-70:]!r}, expected {int(c.expected)}, math-verify "
                f"{int(bool(c.math_verify))} (configured as thor: {int(bool(c.math_verify_as_thor))}), "
                f"thor {int(equal)} (answer {answer!r}; {reason})"
            )
    if args.json:
        args.json.write_text(
            json.dumps([c.__dict__ for c in cases], indent=1, default=str), encoding="utf-8"
        )


if __name__ == "__main__":
    main()
