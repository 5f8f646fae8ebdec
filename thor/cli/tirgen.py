"""``thor tirgen``: build tool-integrated SFT data (a thin layer over thor.data.tirgen.run_tirgen)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tirgen",
        help="build tool-integrated SFT data with an actor and a critic (resumable)",
        description="TIRGen (THOR-SPEC section 1): the actor writes step by step, the critic "
        "inserts python that runs for real, a multi-stage filter keeps the good samples. Kill it "
        "at any moment and run it again: it continues where it stopped.",
    )
    p.add_argument("--problems", default="math_train", help="dataset name or JSONL file")
    p.add_argument(
        "--actor", default="embedded", help="'embedded' (SmolLM2-135M), a model directory or file"
    )
    p.add_argument(
        "--critic", default="rule", help="'rule' (rule-based) or a critic model like --actor"
    )
    p.add_argument(
        "--out", type=Path, required=True, help="output directory (resumed when it exists)"
    )
    p.add_argument(
        "--preset", choices=["paper", "cpu"], help="paper: 512-token steps, 8 attempts; cpu: 128, 2"
    )
    p.add_argument("--limit", type=int, help="first N problems")
    p.add_argument("--shuffle-seed", type=int, help="shuffle the problems before --limit")
    p.add_argument(
        "--concurrency", type=int, default=16, help="problems in flight (the actor's batch)"
    )
    p.add_argument(
        "--exec-workers", type=int, default=4, help="threads running code and verification"
    )
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
    p.add_argument("--temperature", type=float, default=0.6, help="actor temperature")
    p.add_argument("--no-difficulty", action="store_true", help="skip the CoT difficulty filter")
    p.add_argument(
        "--cot-samples", type=int, help="CoT samples per problem for the difficulty filter"
    )
    p.add_argument("--code-quality", choices=["paper", "release", "either"], default="paper")
    p.add_argument(
        "--max-one-call-fraction", type=float, default=0.5, help="balance: 1.0 keeps all"
    )
    p.add_argument("--backend", default="hf", help="hf | vllm | openai")
    p.add_argument(
        "--backend-option",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="extra backend config",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _options(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from thor.data.tirgen import TirgenConfig, run_tirgen

    console = Console()
    cfg = TirgenConfig(
        problems=args.problems,
        actor=args.actor,
        critic=args.critic,
        out=args.out,
        preset=args.preset,
        limit=args.limit,
        shuffle_seed=args.shuffle_seed,
        concurrency=args.concurrency,
        exec_workers=args.exec_workers,
        step_tokens=args.step_tokens,
        min_critic_tokens=args.min_critic_tokens,
        attempts=args.attempts,
        max_response_tokens=args.max_response_tokens,
        temperature=args.temperature,
        difficulty=not args.no_difficulty,
        cot_samples=args.cot_samples,
        code_quality_rule=args.code_quality,
        max_one_call_fraction=args.max_one_call_fraction,
        backend=args.backend,
        backend_options=_options(args.backend_option),
        seed=args.seed,
        progress=not args.no_progress,
    )
    funnel = run_tirgen(cfg)
    console.print(funnel.table())
    console.print(funnel.events_table())
    console.print(f"SFT data: {args.out / 'sft.jsonl'} ({funnel.samples} samples)")
    return 0
