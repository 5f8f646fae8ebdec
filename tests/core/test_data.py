from __future__ import annotations

import json
from pathlib import Path

import pytest

from thor.data import BENCHMARKS, load_jsonl_problems, load_problems
from thor.errors import DatasetError, UnknownNameError

EXPECTED_ROWS = {
    "math500": 500,
    "aime24": 30,
    "aime25": 30,
    "amc23": 40,
    "minerva_math": 272,
    "olympiadbench": 675,
    "gsm8k": 1319,
    "math_train": 7500,
    "gsm8k_train": 7473,
}


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_shipped_benchmarks_load(name: str) -> None:
    probs = load_problems(name)
    assert len(probs) == EXPECTED_ROWS[name]
    assert all(p.problem.strip() and p.answer and p.answer.strip() for p in probs)
    assert len({p.id for p in probs}) == len(probs)
    assert all(p.source == name for p in probs)


def test_limit_and_shuffle_are_deterministic() -> None:
    a = load_problems("math500", limit=5, shuffle_seed=1)
    b = load_problems("math500", limit=5, shuffle_seed=1)
    assert [p.id for p in a] == [p.id for p in b]
    assert [p.id for p in load_problems("math500", limit=3)] == [
        p.id for p in load_problems("math500")[:3]
    ]


def test_typo_suggests() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'gsm8k'"):
        load_problems("gsm8")


def test_jsonl_file(tmp_path: Path) -> None:
    p = tmp_path / "mine.jsonl"
    p.write_text(
        json.dumps({"question": "1+1?", "answer": 2, "extra": "kept"})
        + "\n\n"
        + json.dumps({"problem": "no answer"})
        + "\n"
    )
    probs = load_problems(str(p))
    assert [x.answer for x in probs] == ["2", None]
    assert probs[0].metadata == {"extra": "kept"} and probs[0].id == "mine-0"
    with pytest.raises(DatasetError, match=r"mine\.jsonl:3: no 'answer'"):
        load_jsonl_problems(p, require_answer=True)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json}\n", "invalid JSON"),
        ("[1, 2]\n", "expected a JSON object"),
        ('{"answer": "1"}\n', "no 'problem'"),
    ],
)
def test_bad_lines_are_named(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_problems(str(p))


def test_missing_file() -> None:
    with pytest.raises(DatasetError, match="cannot read"):
        load_jsonl_problems("/nonexistent/file.jsonl")
