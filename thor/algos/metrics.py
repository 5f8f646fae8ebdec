"""Per-step training metrics: a JSONL file (truncated back on resume) and a live console line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog", "read_metrics"]

# What the console line shows, with formats; everything goes to the JSONL file.
_SHOWN = [
    ("reward", "{:.3f}"),
    ("accuracy", "{:.2f}"),
    ("exec_success", "{:.2f}"),
    ("tool_calls", "{:.2f}"),
    ("response_tokens", "{:.0f}"),
    ("groups_kept", "{:.0f}"),
    ("step_groups_kept", "{:.0f}"),
    ("loss", "{:.4f}"),
    ("time_generate", "{:.0f}s"),
    ("time_update", "{:.0f}s"),
]


class MetricsLog:
    """Append one JSON line per step; ``truncate_after(step)`` drops lines a resumed run will redo."""

    def __init__(self, path: Path, *, console: Any = None) -> None:
        self.path = path
        self.console = console
        path.parent.mkdir(parents=True, exist_ok=True)

    def truncate_after(self, step: int) -> None:
        rows = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        os.replace(tmp, self.path)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": step, **metrics}
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if self.console is not None:
            parts = [f"{k} {fmt.format(metrics[k])}" for k, fmt in _SHOWN if k in metrics]
            self.console.print(f"[bold]step {step}[/bold]  " + "  ".join(parts))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics file (a torn last line is ignored)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
