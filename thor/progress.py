"""A rich progress bar with one live field, and wall time summed over resumed invocations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ProgressBar", "wall_time"]


class ProgressBar:
    """``label [bar] done/total <field> elapsed remaining``; does nothing when disabled.

    Example:
        >>> with ProgressBar("eval", total=2, field="acc", enabled=False) as bar:
        ...     bar.advance(acc="50.0%")
        ...     bar.advance(acc="100.0%")
        >>> bar.done
        2
    """

    def __init__(
        self, label: str, total: int, *, field: str, initial: object = "-", enabled: bool = True
    ) -> None:
        self.label, self.total, self.field, self.enabled = label, total, field, enabled
        self.initial = initial
        self.done = 0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn(f"[bold]{self.label}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(f"{self.field} {{task.fields[value]}}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, value=self.initial)
        return self

    def advance(self, **field: object) -> None:
        """One more item done; ``field=value`` updates the live field."""
        self.done += 1
        if self._progress is not None:
            value = field.get(self.field)
            extra = {} if value is None else {"value": value}
            self._progress.update(self._task, advance=1, **extra)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def wall_time(records: Iterable[Mapping[str, Any]], current: tuple[str, float] | None) -> float:
    """Wall time over every invocation of a resumed run.

    Each record carries its invocation's id (``run``) and the seconds since that invocation
    started (``elapsed_s``); an invocation's time is its largest ``elapsed_s``. ``current`` is the
    running invocation's ``(run, seconds so far)``.

    Example:
        >>> wall_time([{"run": "a", "elapsed_s": 3.0}, {"run": "a", "elapsed_s": 5.0}], ("b", 2.0))
        7.0
    """
    per_run: dict[str, float] = {}
    for r in records:
        run = str(r.get("run", ""))
        per_run[run] = max(per_run.get(run, 0.0), float(r.get("elapsed_s", 0.0)))
    if current is not None:
        per_run[current[0]] = max(per_run.get(current[0], 0.0), current[1])
    return sum(per_run.values())
