"""``thor tirgen``: build tool-integrated SFT data (a thin layer over thor.data.tirgen.run_tirgen).

The run is a :class:`~thor.data.tirgen.TirgenConfig`: from ``--config FILE``, the shortcut flags
below (each sets one field; a flag left out keeps the config's default, which lives in
:class:`~thor.data.tirgen.TirgenConfig` only) and ``--set key=value`` (last).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from thor.cli.train import (
    add_config_arguments,
    key_json_options,
    load_run_config,
    print_config,
    setup_run,
)

# flag -> TirgenConfig field, for the flags that set one field as they are
SHORTCUTS = {
    "problems": "problems",
    "actor": "actor",
    "critic": "critic",
    "out": "out",
    "preset": "preset",
    "limit": "limit",
    "shuffle_seed": "shuffle_seed",
    "concurrency": "concurrency",
    "exec_workers": "exec_workers",
    "step_tokens": "step_tokens",
    "min_critic_tokens": "min_critic_tokens",
    "attempts": "attempts",
    "max_response_tokens": "max_response_tokens",
    "temperature": "temperature",
    "cot_samples": "cot_samples",
    "code_quality": "code_quality_rule",
    "max_one_call_fraction": "max_one_call_fraction",
    "backend": "backend",
    "seed": "seed",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tirgen",
        help="build tool-integrated SFT data with an actor and a critic (resumable)",
        description="TIRGen (THOR-SPEC section 1): the actor writes step by step, the critic "
        "inserts python that runs for real, a multi-stage filter keeps the good samples. Kill it "
        "at any moment and run it again: it continues where it stopped. Flags set TirgenConfig "
        "fields; --config FILE and --set KEY=VALUE set any field.",
        argument_default=argparse.SUPPRESS,
    )
    add_config_arguments(p)
    p.add_argument("--problems", help="dataset name or JSONL file (math_train)")
    p.add_argument("--actor", help="'embedded' (SmolLM2-135M), a model directory or file")
    p.add_argument("--critic", help="'rule' (rule-based) or a critic model like --actor")
    p.add_argument("--out", type=Path, help="output directory (resumed when it exists)")
    p.add_argument(
        "--preset", choices=["paper", "cpu"], help="paper: 512-token steps, 8 attempts; cpu: 128, 2"
    )
    p.add_argument("--limit", type=int, help="first N problems")
    p.add_argument("--shuffle-seed", type=int, help="shuffle the problems before --limit")
    p.add_argument("--concurrency", type=int, help="problems in flight (the actor's batch)")
    p.add_argument("--exec-workers", type=int, help="threads running code and verification")
    p.add_argument("--step-tokens", type=int, help="tokens per actor step")
    p.add_argument(
        "--min-critic-tokens",
        type=int,
        help="shorter steps are kept as written (default: half of --step-tokens)",
    )
    p.add_argument("--attempts", type=int, help="tries per problem")
    p.add_argument(
        "--max-tokens", type=int, dest="max_response_tokens", help="actor tokens per attempt"
    )
    p.add_argument("--temperature", type=float, help="actor temperature")
    p.add_argument("--no-difficulty", action="store_true", help="skip the CoT difficulty filter")
    p.add_argument("--cot-samples", type=int, help="CoT samples per problem (difficulty filter)")
    p.add_argument("--code-quality", choices=["paper", "release", "either"])
    p.add_argument("--max-one-call-fraction", type=float, help="balance: 1.0 keeps all")
    p.add_argument("--backend", help="a registered policy backend: hf, vllm, openai")
    p.add_argument(
        "--backend-option",
        dest="backend_option",
        action="append",
        metavar="KEY=JSON",
        help="extra backend config",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run, overrides=[], imports=[], config=None, threads=None)


def shortcut_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The TirgenConfig fields the shortcut flags set (only the flags given)."""
    given = vars(args)
    fields: dict[str, Any] = {
        field: given[flag] for flag, field in SHORTCUTS.items() if flag in given
    }
    if "backend_option" in given:
        fields["backend_options"] = key_json_options(given["backend_option"])
    if given.get("no_difficulty"):
        fields["difficulty"] = False
    if given.get("no_progress"):
        fields["progress"] = False
    return fields


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from thor.data.tirgen import TirgenConfig, run_tirgen

    console = Console()
    setup_run(args)
    cfg = load_run_config(TirgenConfig, args.config, args.overrides, shortcut_fields(args))
    if getattr(args, "print_config", False):
        print_config(cfg)
        return 0
    funnel = run_tirgen(cfg)
    console.print(funnel.table())
    console.print(funnel.events_table())
    console.print(f"SFT data: {cfg.out / 'sft.jsonl'} ({funnel.samples} samples)")
    return 0
