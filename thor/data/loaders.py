"""Loading problems by name (shipped benchmarks, registered datasets) or from a JSONL file."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path

from pydantic import Field

from thor.config import ThorConfig
from thor.errors import DatasetError
from thor.types import Problem

__all__ = ["BENCHMARKS", "DATASETS", "DatasetConfig", "load_jsonl_problems", "load_problems"]

BENCHMARKS: dict[str, str] = {
    "math500": "math500.jsonl",
    "aime24": "aime24.jsonl",
    "aime25": "aime25.jsonl",
    "amc23": "amc23.jsonl",
    "minerva_math": "minerva_math.jsonl",
    "olympiadbench": "olympiadbench.jsonl",
    "gsm8k": "gsm8k.jsonl",
    "math_train": "math_train.jsonl",
    "gsm8k_train": "gsm8k_train.jsonl",
}
"""Shipped data files by name (sources and licenses: ``thor/data/benchmarks/SOURCES.md``)."""

TRAIN_SETS = frozenset({"math_train", "gsm8k_train"})
"""Training splits: never evaluated on (``gsm8k`` is GSM8K's test split, ``gsm8k_train`` its train split)."""

TEST_SETS = frozenset(BENCHMARKS) - TRAIN_SETS


class DatasetConfig(ThorConfig):
    """Which problems to load: ``limit`` keeps the first N (after an optional seeded shuffle)."""

    limit: int | None = Field(None, ge=1)
    shuffle_seed: int | None = None


from thor.registries import DATASETS  # noqa: E402  (the registry lives with the others)


def _register_benchmark(name: str) -> None:
    def make(cfg: DatasetConfig) -> list[Problem]:
        probs = list(_load_shipped(name))
        if cfg.shuffle_seed is not None:
            import random

            random.Random(cfg.shuffle_seed).shuffle(probs)
        return probs[: cfg.limit] if cfg.limit else probs

    DATASETS.register(
        name, config=DatasetConfig, factory=make, description=f"shipped benchmark {name}"
    )


for _name in BENCHMARKS:
    _register_benchmark(_name)


@cache
def _load_shipped(name: str) -> tuple[Problem, ...]:
    ref = resources.files("thor.data") / "benchmarks" / BENCHMARKS[name]
    with resources.as_file(ref) as path:
        return tuple(load_jsonl_problems(path, source=name))


def load_jsonl_problems(
    path: str | Path, *, source: str | None = None, require_answer: bool = False
) -> list[Problem]:
    """Read problems from a JSONL file with ``problem`` (or ``question``) and ``answer`` fields.

    Other fields go to ``Problem.metadata``. A line without a problem, or invalid JSON, raises
    :class:`DatasetError` naming the line; a line without an answer is kept with ``answer=None``
    unless ``require_answer`` (then it raises).
    """
    p = Path(path)
    src = source or p.stem
    out: list[Problem] = []
    try:
        fh = p.open(encoding="utf-8")
    except OSError as err:
        raise DatasetError(f"cannot read {p}: {err}") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetError(f"{p}:{lineno}: invalid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise DatasetError(f"{p}:{lineno}: expected a JSON object")
            text = row.pop("problem", None) or row.pop("question", None)
            if not isinstance(text, str) or not text.strip():
                raise DatasetError(f"{p}:{lineno}: no 'problem' (or 'question') text")
            answer = row.pop("answer", None)
            if answer is not None and not isinstance(answer, str):
                answer = str(answer)
            if require_answer and not (answer and answer.strip()):
                raise DatasetError(f"{p}:{lineno}: no 'answer'")
            pid = row.pop("unique_id", None) or row.pop("id", None)
            pid = f"{src}-{lineno - 1}" if pid is None else str(pid)
            out.append(Problem(id=pid, problem=text, answer=answer, source=src, metadata=row))
    return out


def load_problems(
    name_or_path: str | Path, *, limit: int | None = None, shuffle_seed: int | None = None
) -> list[Problem]:
    """Problems from a registered dataset name (did-you-mean on typos) or a JSONL path."""
    key = str(name_or_path)
    if key in DATASETS or not (key.endswith(".jsonl") or Path(key).exists()):
        return DATASETS.make(key, limit=limit, shuffle_seed=shuffle_seed)
    probs = load_jsonl_problems(key)
    if shuffle_seed is not None:
        import random

        random.Random(shuffle_seed).shuffle(probs)
    return probs[:limit] if limit else probs


# Generated datasets register themselves here (at the end: they import this module's registry).
import thor.data.synthetic  # noqa: E402,F401
