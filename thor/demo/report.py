"""The demo's ablation table: accuracy per stage with 95% paired-bootstrap intervals."""

from __future__ import annotations

import random
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

__all__ = ["StageResult", "bootstrap_ci", "markdown_table", "paired_bootstrap_ci", "rich_table"]


class StageResult(BaseModel):
    """One row of the ablation: a stage, its agent and model, and its per-problem correctness."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    agent: str
    model: str
    correct: list[bool]
    tool_calls: float
    exec_success: float | None
    retries: float
    tokens: float
    wall_s: float

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.correct) if self.correct else 0.0


def bootstrap_ci(
    values: Sequence[bool], *, samples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile bootstrap interval of a mean (resampling problems).

    Example:
        >>> lo, hi = bootstrap_ci([True] * 30 + [False] * 70)
        >>> 0.2 < lo < 0.3 < hi < 0.4
        True
    """
    n = len(values)
    if n == 0:
        return (0.0, 0.0)
    rng = random.Random(seed)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(samples))
    return means[int(0.025 * samples)], means[int(0.975 * samples) - 1]


def paired_bootstrap_ci(
    a: Sequence[bool], b: Sequence[bool], *, samples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of ``mean(b) - mean(a)`` resampling problems in pairs (same problems, two stages)."""
    if len(a) != len(b):
        raise ValueError("paired bootstrap needs the same problems in both stages")
    n = len(a)
    if n == 0:
        return (0.0, 0.0)
    rng = random.Random(seed)
    diffs = []
    for _ in range(samples):
        idx = [rng.randrange(n) for _ in range(n)]
        diffs.append(sum(int(b[i]) - int(a[i]) for i in idx) / n)
    diffs.sort()
    return diffs[int(0.025 * samples)], diffs[int(0.975 * samples) - 1]


def _rows(results: Sequence[StageResult]) -> list[list[str]]:
    rows = []
    prev: StageResult | None = None
    for r in results:
        lo, hi = bootstrap_ci(r.correct)
        delta = "-"
        if prev is not None and len(prev.correct) == len(r.correct):
            dlo, dhi = paired_bootstrap_ci(prev.correct, r.correct)
            d = r.accuracy - prev.accuracy
            delta = f"{d:+.1%} [{dlo:+.1%}, {dhi:+.1%}]"
        rows.append(
            [
                r.stage,
                r.agent,
                f"{r.accuracy:.1%}",
                f"[{lo:.1%}, {hi:.1%}]",
                delta,
                f"{r.tool_calls:.2f}",
                "-" if r.exec_success is None else f"{r.exec_success:.0%}",
                f"{r.retries:.2f}",
                f"{r.tokens:.0f}",
                f"{r.wall_s:.0f}",
            ]
        )
        prev = r
    return rows


_HEADER = [
    "stage",
    "agent",
    "accuracy",
    "95% CI",
    "vs previous (paired 95% CI)",
    "calls/ep",
    "exec ok",
    "retries/ep",
    "tokens/ep",
    "eval s",
]


def markdown_table(results: Sequence[StageResult]) -> str:
    """The ablation as a markdown table (for the README and the run directory)."""
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(results)]
    return "\n".join(lines)


def rich_table(results: Sequence[StageResult], title: str) -> object:
    """The ablation as a rich table (for the terminal)."""
    from rich.table import Table

    table = Table(title=title)
    for h in _HEADER:
        table.add_column(h, justify="left" if h in ("stage", "agent") else "right")
    for row in _rows(results):
        table.add_row(*row)
    return table
