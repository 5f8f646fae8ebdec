"""``thor plot RUN_DIR``: PNG curves of a run's metrics (a thin layer over thor.algos.plot)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="draw a training run's metrics as PNG curves",
        description="Reads RUN_DIR/metrics.jsonl (from `thor train` or `thor sft`) and writes "
        "one PNG per panel (reward, accuracy, execution success, tool calls, response length, "
        "losses, clip fractions, groups kept, time split) plus overview.png.",
    )
    p.add_argument("run_dir", type=Path, help="a run directory (or its metrics.jsonl)")
    p.add_argument("--out", type=Path, help="where the PNGs go (default: RUN_DIR/plots)")
    p.add_argument("--dpi", type=int, default=100)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from thor.algos.plot import plot_run

    files = plot_run(args.run_dir, args.out, dpi=args.dpi)
    for f in files:
        print(f)
    return 0
