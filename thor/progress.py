"""A rich progress bar with one live field, and wall time summed over resumed invocations."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["ProgressBar", "wall_time"]


class ProgressBar:
    """``label [bar] done/total <field> tokens elapsed remaining``; does nothing when disabled.

    Episodes can take minutes each on a CPU, so besides items done the bar shows the tokens
    generated so far and their rate (``tokens``: a callable polled at each refresh). When the output
    is not a terminal (a log file, CI), a plain progress line is printed every ``interval_s``
    seconds instead of a live bar.

    Example:
        >>> with ProgressBar("eval", total=2, field="acc", enabled=False) as bar:
        ...     bar.advance(acc="50.0%")
        ...     bar.advance(acc="100.0%")
        >>> bar.done
        2
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        field: str,
        initial: object = "-",
        enabled: bool = True,
        tokens: Callable[[], int] | None = None,
        interval_s: float = 30.0,
        console: Any = None,
    ) -> None:
        self.label, self.total, self.field, self.enabled = label, total, field, enabled
        self.initial = initial
        self.value: object = initial
        self.done = 0
        self.tokens = tokens
        self.interval_s = interval_s
        self._console = console
        self._progress: Any = None
        self._task: Any = None
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> ProgressBar:
        if not self.enabled:
            return self
        from rich.console import Console

        console = self._console or Console(stderr=True)
        self._t0 = time.monotonic()
        if not console.is_terminal:
            self._console = console
            self._ticker = threading.Thread(target=self._tick, name="thor-progress", daemon=True)
            self._ticker.start()
            return self
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns: list[Any] = [
            TextColumn(f"[bold]{self.label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(f"{self.field} {{task.fields[value]}}"),
        ]
        if self.tokens is not None:
            columns.append(_tokens_column(self.tokens, self._t0))
        columns += [TimeElapsedColumn(), TimeRemainingColumn()]
        self._progress = Progress(*columns, console=console)
        self._progress.start()
        self._task = self._progress.add_task(self.label, total=self.total, value=self.initial)
        return self

    def advance(self, **field: object) -> None:
        """One more item done; ``field=value`` updates the live field."""
        self.done += 1
        value = field.get(self.field)
        if value is not None:
            self.value = value
        if self._progress is not None:
            extra = {} if value is None else {"value": value}
            self._progress.update(self._task, advance=1, **extra)

    def line(self) -> str:
        """The plain progress line: items, the live field, tokens and their rate, elapsed time."""
        elapsed = time.monotonic() - self._t0
        text = f"{self.label} {self.done}/{self.total} {self.field} {self.value}"
        if self.tokens is not None:
            n = self.tokens()
            text += f" | {n:,} tokens ({n / max(elapsed, 1e-9):.1f}/s)"
        return text + f" | {elapsed / 60:.1f} min"

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._console.print(self.line(), highlight=False)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._ticker is not None:
            self._stop.set()
            self._ticker.join(timeout=5)
            self._console.print(self.line(), highlight=False)


def _tokens_column(tokens: Callable[[], int], t0: float) -> Any:
    """A rich column: tokens generated so far and their rate, polled at each refresh."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class TokensColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            n = tokens()
            rate = n / max(time.monotonic() - t0, 1e-9)
            return Text(f"{n:,} tok {rate:.0f}/s", style="progress.data.speed")

    return TokensColumn()


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
