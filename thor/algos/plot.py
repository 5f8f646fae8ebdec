"""``thor plot RUN_DIR``: PNG curves of a run's ``metrics.jsonl`` (RL or SFT), drawn with matplotlib.

One PNG per panel (reward and accuracy, execution success, tool calls, response length, losses,
clip fractions, groups kept, time split, learning rate and gradient norm) plus ``overview.png``
with every panel that has data. Panels whose metrics the run did not log are skipped, so the same
command draws a GRPO run, a THOR run (step-level curves too) and an SFT run. Matplotlib runs on its
non-interactive Agg backend (no display needed).

Example:
    >>> import json, tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (run / "metrics.jsonl").write_text("".join(
    ...     json.dumps({"step": s, "reward": s / 4, "accuracy": s / 5}) + "\\n" for s in (1, 2, 3)))
    >>> [p.name for p in plot_run(run)]
    ['reward.png', 'overview.png']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thor.algos.metrics import read_metrics
from thor.errors import ThorError

__all__ = ["PANELS", "Panel", "plot_run"]


@dataclass(frozen=True)
class Panel:
    """One figure: a file name, a title, the metrics drawn (those present) and the y label."""

    name: str
    title: str
    keys: tuple[str, ...]
    ylabel: str = ""


PANELS: tuple[Panel, ...] = (
    Panel("reward", "Reward and accuracy", ("reward", "accuracy"), "per episode"),
    Panel(
        "execution",
        "Code execution",
        ("exec_success", "step_exec_success", "failed_call_episodes"),
        "fraction",
    ),
    Panel("tool_calls", "Tool calls per episode", ("tool_calls",), "calls"),
    Panel("response_length", "Response length", ("response_tokens",), "tokens"),
    Panel(
        "losses",
        "Losses",
        ("loss", "policy_loss", "traj_policy_loss", "step_policy_loss", "nll_loss", "kl"),
        "loss",
    ),
    Panel(
        "clipping",
        "Clip fractions",
        ("clip_frac_low", "clip_frac_high", "dual_clip_frac"),
        "fraction of tokens",
    ),
    Panel(
        "groups",
        "Groups kept (dynamic sampling)",
        ("groups_kept", "groups_zero_spread", "step_groups_kept", "step_groups_dropped"),
        "groups",
    ),
    Panel(
        "time",
        "Time per step",
        ("time_generate", "time_execute", "time_update", "time_collect"),
        "seconds",
    ),
    Panel("optimizer", "Optimizer", ("grad_norm", "learning_rate"), ""),
)
"""What :func:`plot_run` draws, in order."""


def _series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if isinstance(v, int | float) and math.isfinite(v) and "step" in r:
            xs.append(float(r["step"]))
            ys.append(float(v))
    return xs, ys


def _draw(ax: Any, panel: Panel, rows: Sequence[dict[str, Any]]) -> bool:
    drawn = False
    for key in panel.keys:
        xs, ys = _series(rows, key)
        if xs:
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=key)
            drawn = True
    if drawn:
        ax.set_title(panel.title)
        ax.set_xlabel("step")
        ax.set_ylabel(panel.ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return drawn


def plot_run(
    run_dir: str | Path, out_dir: str | Path | None = None, *, dpi: int = 100
) -> list[Path]:
    """Write one PNG per panel with data, then ``overview.png``; returns the files written.

    Args:
        run_dir: a run directory (holding ``metrics.jsonl``) or the metrics file itself.
        out_dir: where the PNGs go (default: ``RUN_DIR/plots``).

    Raises:
        ThorError: no metrics file, or no rows in it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run_dir)
    path = run if run.is_file() else run / "metrics.jsonl"
    rows = read_metrics(path)
    if not rows:
        raise ThorError(f"no metrics in {path}: is it a thor run directory?")
    out = Path(out_dir) if out_dir is not None else path.parent / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    shown: list[Panel] = []
    for panel in PANELS:
        fig, ax = plt.subplots(figsize=(6, 4))
        try:
            if _draw(ax, panel, rows):
                fig.tight_layout()
                target = out / f"{panel.name}.png"
                fig.savefig(target, dpi=dpi)
                written.append(target)
                shown.append(panel)
        finally:
            plt.close(fig)
    if shown:
        cols = min(3, len(shown))
        n_rows = math.ceil(len(shown) / cols)
        fig, axes = plt.subplots(n_rows, cols, figsize=(5 * cols, 3.6 * n_rows), squeeze=False)
        try:
            for ax, panel in zip(axes.flat, shown, strict=False):
                _draw(ax, panel, rows)
            for ax in list(axes.flat)[len(shown) :]:
                ax.axis("off")
            fig.suptitle(f"{path.parent.name}: {len(rows)} steps")
            fig.tight_layout()
            target = out / "overview.png"
            fig.savefig(target, dpi=dpi)
            written.append(target)
        finally:
            plt.close(fig)
    return written
