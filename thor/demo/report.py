"""The demo's ablation table: accuracy per stage with 95% paired-bootstrap intervals.

Besides accuracy (thor's boxed rule; on GSM8K also the last number in the response, lm-eval's
rule), each row says what the stage did: tool calls that ran (and failed), self-correction
retries, and for a step-level RL row the step groups it trained on. :func:`cost_table` lists every
stage's wall time, peak memory and tokens.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

__all__ = [
    "StageCost",
    "StageResult",
    "bootstrap_ci",
    "cost_table",
    "markdown_table",
    "paired_bootstrap_ci",
    "rich_table",
]


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
    last_number: list[bool] | None = None
    calls_ran: int | None = None
    calls_failed: int | None = None
    step_groups: int | None = None

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.correct) if self.correct else 0.0


class StageCost(BaseModel):
    """What one stage of the demo cost (from its ``result.json``)."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    wall_s: float
    peak_rss_mb: float | None = None
    tokens: int = 0


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


def _did(r: StageResult) -> str:
    """Calls that ran (failed), and the step groups a step-level RL stage trained on."""
    parts = []
    if r.calls_ran is not None:
        parts.append(f"{r.calls_ran} calls ({r.calls_failed or 0} failed)")
    if r.step_groups is not None:
        parts.append(f"{r.step_groups} step groups trained")
    return ", ".join(parts) or "-"


def _rows(results: Sequence[StageResult]) -> list[list[str]]:
    rows = []
    prev: StageResult | None = None
    numeric = any(r.last_number is not None for r in results)
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
        if numeric:
            last = r.last_number or []
            rows[-1].insert(4, f"{sum(last) / len(last):.1%}" if last else "-")
        rows[-1].insert(-2, _did(r))
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
    "what it did",
    "tokens/ep",
    "eval s",
]


def _header(results: Sequence[StageResult]) -> list[str]:
    if any(r.last_number is not None for r in results):
        return [*_HEADER[:4], "last number (lm-eval)", *_HEADER[4:]]
    return list(_HEADER)


def markdown_table(results: Sequence[StageResult]) -> str:
    """The ablation as a markdown table (for the README and the run directory)."""
    header = _header(results)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(results)]
    return "\n".join(lines)


def cost_table(costs: Sequence[StageCost]) -> str:
    """Every stage's wall time, peak memory (this process) and tokens, as a markdown table."""
    lines = ["| stage | wall | peak RSS | tokens |", "|---|---:|---:|---:|"]
    for c in costs:
        rss = "-" if c.peak_rss_mb is None else f"{c.peak_rss_mb:,.0f} MiB"
        lines.append(f"| {c.stage} | {_duration(c.wall_s)} | {rss} | {c.tokens:,} |")
    total = sum(c.wall_s for c in costs)
    tokens = sum(c.tokens for c in costs)
    lines.append(f"| total | {_duration(total)} | | {tokens:,} |")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def rich_table(results: Sequence[StageResult], title: str) -> object:
    """The ablation as a rich table (for the terminal)."""
    from rich.table import Table

    table = Table(title=title)
    for h in _header(results):
        table.add_column(h, justify="left" if h in ("stage", "agent", "what it did") else "right")
    for row in _rows(results):
        table.add_row(*row)
    return table
