"""Progress: tokens generated are shown, and a plain line is printed at intervals off a terminal."""

from __future__ import annotations

import io
import time

from rich.console import Console

from thor.progress import ProgressBar


def test_off_a_terminal_progress_lines_come_at_intervals_with_tokens() -> None:
    out = io.StringIO()
    tokens = [0]
    console = Console(file=out, force_terminal=False, width=200)
    with ProgressBar(
        "eval", total=2, field="acc", tokens=lambda: tokens[0], interval_s=0.05, console=console
    ) as bar:
        time.sleep(0.2)  # nothing finished yet: lines still come, with the tokens so far
        tokens[0] = 1234
        time.sleep(0.2)
        bar.advance(acc="50.0%")
        bar.advance(acc="100.0%")
    lines = out.getvalue().strip().splitlines()
    assert len(lines) >= 3
    assert lines[0].startswith("eval 0/2 acc -")
    assert any("1,234 tokens" in line for line in lines)
    assert lines[-1].startswith("eval 2/2 acc 100.0% | 1,234 tokens")


def test_disabled_prints_nothing() -> None:
    out = io.StringIO()
    with ProgressBar("x", total=1, field="f", enabled=False, console=Console(file=out)) as bar:
        bar.advance(f=1)
    assert out.getvalue() == "" and bar.done == 1
