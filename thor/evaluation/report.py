"""Tables for humans: one run's summary, and two runs side by side."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from thor.evaluation.metrics import EvalSummary, is_correct, summarize
from thor.evaluation.store import ResultsFile

__all__ = ["compare_runs", "load_run", "summary_table"]

_ROWS: list[tuple[str, str]] = [
    ("problems", "{:d}"),
    ("episodes", "{:d}"),
    ("accuracy", "{:.1%}"),
    ("last_number_accuracy", "{:.1%}"),
    ("tool_calls_per_episode", "{:.2f}"),
    ("exec_success_rate", "{:.1%}"),
    ("retries_per_episode", "{:.2f}"),
    ("tokens_per_episode", "{:.0f}"),
    ("answered_rate", "{:.1%}"),
    ("errors", "{:d}"),
    ("wall_s", "{:.0f} s"),
]


def _fmt(summary: EvalSummary, field: str, pattern: str) -> str:
    value = getattr(summary, field)
    return "-" if value is None else pattern.format(value)


_LABELS = {
    "accuracy": "accuracy (boxed, thor)",
    "last_number_accuracy": "accuracy (last number, lm-eval)",
}


def summary_table(summaries: dict[str, EvalSummary], title: str = "thor eval") -> Table:
    """A rich table with one column per named summary.

    Accuracy is thor's boxed rule; on numeric benchmarks (GSM8K) a second row gives the last
    number in the response (lm-eval's flexible extraction). Rows that no summary has are left out.
    """
    table = Table(title=title)
    table.add_column("metric")
    for name in summaries:
        table.add_column(name, justify="right")
    numeric = any(s.last_number_accuracy is not None for s in summaries.values())
    for field, pattern in _ROWS:
        if field == "last_number_accuracy" and not numeric:
            continue
        if numeric and field in _LABELS:
            table.add_row(_LABELS[field], *(_fmt(s, field, pattern) for s in summaries.values()))
            continue
        table.add_row(
            field.replace("_", " "), *(_fmt(s, field, pattern) for s in summaries.values())
        )
    ks = sorted({k for s in summaries.values() for k in s.pass_at_k})
    for k in ks:
        table.add_row(
            f"pass@{k}",
            *(f"{s.pass_at_k[k]:.1%}" if k in s.pass_at_k else "-" for s in summaries.values()),
        )
    return table


def load_run(path: str | Path) -> tuple[dict, EvalSummary]:
    """The manifest and summary of a results file."""
    store = ResultsFile(path)
    store.load()
    if store.manifest is None:
        raise FileNotFoundError(f"{path}: no results")
    wall: dict[str, float] = {}
    for r in store.records:
        wall[str(r.get("run"))] = max(
            wall.get(str(r.get("run")), 0.0), float(r.get("elapsed_s", 0.0))
        )
    return store.manifest, summarize(store.episodes(), wall_s=sum(wall.values()))


def compare_runs(a: str | Path, b: str | Path, console: Console | None = None) -> Table:
    """Two runs side by side, plus how their per-problem results agree."""
    console = console or Console()
    (ma, sa), (mb, sb) = load_run(a), load_run(b)
    name_a = f"A: {ma.get('agent')} {Path(a).name}"
    name_b = f"B: {mb.get('agent')} {Path(b).name}"
    table = summary_table({name_a: sa, name_b: sb}, title="thor eval --compare")
    ra, rb = ResultsFile(a), ResultsFile(b)
    ra.load()
    rb.load()
    ca = {e.id: is_correct(e) for e in ra.episodes()}
    cb = {e.id: is_correct(e) for e in rb.episodes()}
    common = sorted(set(ca) & set(cb))
    both = sum(ca[i] and cb[i] for i in common)
    only_a = sum(ca[i] and not cb[i] for i in common)
    only_b = sum(cb[i] and not ca[i] for i in common)
    table.caption = (
        f"{len(common)} common episodes: both correct {both}, only A {only_a}, only B {only_b}"
    )
    return table
