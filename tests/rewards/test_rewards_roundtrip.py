"""Round trip over the gold answers of the shipped benchmarks, through verify_batch.

Every gold answer must verify as equal to its re-renderings (:func:`equal_renderings`, written in
a response as ``\\boxed{...}`` and extracted again) and as not equal to its near misses
(:func:`near_misses`). The few that cannot are listed, with the reason, in
``roundtrip_known_failures.json`` (and in docs/verification.md); the tests assert exactly that
list, so a regression (or a fix) fails them:

- a pair listed as ``wrong`` must fail exactly so, and no unlisted pair may fail;
- a pair listed as ``timeout`` (sympy never finishes it) may time out or, on a fast machine, finish
  with the right verdict; any other timeout is a failure.

The full sweep (every benchmark, about 38,000 pairs) is in the slow tier; the fast tier runs the
listed golds plus a fixed sample of each benchmark.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from thor.data import load_problems
from thor.data.loaders import BENCHMARKS
from thor.rewards import Verifier, VerifierConfig, extract_answer
from thor.rewards.renderings import equal_renderings, near_misses

KNOWN_FILE = Path(__file__).with_name("roundtrip_known_failures.json")
KNOWN = json.loads(KNOWN_FILE.read_text(encoding="utf-8"))
Key = tuple[str, str, str]  # benchmark, problem id, rendering kind


@dataclass(frozen=True)
class Case:
    benchmark: str
    pid: str
    kind: str
    gold: str
    rendering: str
    expected: bool

    @property
    def key(self) -> Key:
        return (self.benchmark, self.pid, self.kind)


def known(failure: str) -> set[Key]:
    return {(k["benchmark"], k["id"], k["kind"]) for k in KNOWN if k["failure"] == failure}


def cases(benchmark: str, ids: set[str] | None = None, sample: int | None = None) -> list[Case]:
    probs = [p for p in load_problems(benchmark) if p.answer]
    if sample is not None:
        chosen = random.Random(f"{benchmark}-roundtrip").sample(probs, min(sample, len(probs)))
        probs = [p for p in probs if p in chosen or (ids and p.id in ids)]
    out: list[Case] = []
    for p in probs:
        assert p.answer is not None
        for kind, text in equal_renderings(p.answer):
            out.append(Case(benchmark, p.id, kind, p.answer, text, True))
        for kind, text in near_misses(p.answer):
            out.append(Case(benchmark, p.id, kind, p.answer, text, False))
    return out


def sweep(v: Verifier, all_cases: list[Case]) -> tuple[set[Key], set[Key], list[str]]:
    """Run every case through extraction and verify_batch: (wrong keys, timed-out keys, details)."""
    preds = [
        extract_answer(f"Thus the final answer is $\\boxed{{{c.rendering}}}$.") for c in all_cases
    ]
    lost = [c.key for c, p in zip(all_cases, preds, strict=True) if p != c.rendering.strip()]
    assert not lost, f"extraction did not give back the rendering: {lost[:10]}"
    verdicts = v.verify_batch([(c.gold, p or "") for c, p in zip(all_cases, preds, strict=True)])
    wrong: set[Key] = set()
    timed_out: set[Key] = set()
    details: list[str] = []
    for c, vd in zip(all_cases, verdicts, strict=True):
        if vd.timed_out:
            timed_out.add(c.key)
        elif vd.equal != c.expected:
            wrong.add(c.key)
            details.append(f"{c.key}: gold={c.gold!r} rendering={c.rendering!r} -> {vd.reason}")
    return wrong, timed_out, details


def check(wrong: set[Key], timed_out: set[Key], details: list[str], scope: set[Key]) -> None:
    expected_wrong = known("wrong") & scope
    assert wrong == expected_wrong, (
        f"new failures: {sorted(wrong - expected_wrong)}\nno longer failing: "
        f"{sorted(expected_wrong - wrong)}\n" + "\n".join(details[:30])
    )
    assert timed_out <= known("timeout"), (
        f"unlisted timeouts: {sorted(timed_out - known('timeout'))}"
    )


@pytest.fixture(scope="module")
def verifier() -> Iterator[Verifier]:
    with Verifier(VerifierConfig(workers=2, timeout_s=20.0)) as v:
        yield v


def test_known_list_is_well_formed() -> None:
    keys = [(k["benchmark"], k["id"], k["kind"]) for k in KNOWN]
    assert len(keys) == len(set(keys))
    for k in KNOWN:
        assert k["failure"] in ("wrong", "timeout") and k["why"].strip()
        assert k["benchmark"] in BENCHMARKS
        forms = dict(equal_renderings(k["gold"]) + near_misses(k["gold"]))
        assert forms.get(k["kind"]) == k["rendering"], k  # the generator still makes this case


def test_docs_list_every_known_failure() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "verification.md").read_text(
        encoding="utf-8"
    )
    for k in KNOWN:
        assert f"`{k['id']}`" in docs and k["kind"] in docs, k


@pytest.mark.timeout(240)
def test_roundtrip_sample_of_every_benchmark(verifier: Verifier) -> None:
    listed_ids = {k["id"] for k in KNOWN if k["failure"] == "wrong"}
    all_cases = [c for b in BENCHMARKS for c in cases(b, ids=listed_ids, sample=4)]
    all_cases = [c for c in all_cases if c.key not in known("timeout")]  # 20 s each: slow tier
    assert len(all_cases) > 100
    wrong, timed_out, details = sweep(verifier, all_cases)
    check(wrong, timed_out, details, {c.key for c in all_cases})


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("benchmark", sorted(BENCHMARKS))
def test_roundtrip_every_gold_answer(verifier: Verifier, benchmark: str) -> None:
    all_cases = cases(benchmark)
    wrong, timed_out, details = sweep(verifier, all_cases)
    check(wrong, timed_out, details, {c.key for c in all_cases})
