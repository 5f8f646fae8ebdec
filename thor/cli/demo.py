"""``thor demo``: the main job (a thin layer over thor.demo.run_demo)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="THOR's pipeline on the embedded model: TIRGen, SFT, RL, evaluation"
    )
    p.add_argument(
        "--preset",
        choices=["quick", "long", "gsm8k"],
        default="quick",
        help="quick: about 12 minutes on 2 CPU cores; long: 300 held-out problems, about 2 hours; "
        "gsm8k: GSM8K train -> 500 GSM8K test problems, hours (resumable)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        dest="overrides",
        help="change a preset setting, e.g. --set eval_problems=8 --set sft_rows=16",
    )
    p.add_argument("--model", default="embedded", help="the model to start from")
    p.add_argument(
        "--out", type=Path, default=None, help="output directory (default runs/demo-PRESET)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from thor.demo import DemoConfig, run_demo

    out = args.out or Path(f"runs/demo-{args.preset}")
    overrides: dict[str, object] = {}
    for pair in args.overrides:
        key, _, value = pair.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    run_demo(
        DemoConfig(
            preset=args.preset,
            out_dir=out,
            model=args.model,
            seed=args.seed,
            overrides=overrides,
            progress=not args.no_progress,
        )
    )
    return 0
