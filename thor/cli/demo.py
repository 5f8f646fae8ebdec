"""``thor demo``: the main job (a thin layer over thor.demo.run_demo)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="THOR's pipeline on the embedded model: TIRGen, SFT, RL, evaluation"
    )
    p.add_argument(
        "--preset",
        choices=["quick", "long"],
        default="quick",
        help="quick: about 12 minutes on 2 CPU cores; long: 300 held-out problems, about 2 hours",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output directory (default runs/demo-PRESET)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from thor.demo import DemoConfig, run_demo

    out = args.out or Path(f"runs/demo-{args.preset}")
    run_demo(
        DemoConfig(preset=args.preset, out_dir=out, seed=args.seed, progress=not args.no_progress)
    )
    return 0
