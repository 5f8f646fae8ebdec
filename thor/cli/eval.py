"""``thor eval``: evaluate an agent on a benchmark (a thin layer over thor.evaluation.evaluate)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate an agent on a benchmark (resumable)")
    p.add_argument("--benchmark", default="math500", help="shipped benchmark name or a JSONL file")
    p.add_argument("--agent", choices=["cot", "tir", "thor"], default="tir")
    p.add_argument(
        "--preset",
        choices=["paper", "cpu"],
        help="paper: T 0.6, 4096 tokens, k 4; cpu: 512 tokens, k 1",
    )
    p.add_argument("--k", type=int, help="samples per problem (Avg@k)")
    p.add_argument("--limit", type=int, help="first N problems")
    p.add_argument(
        "--model", default="embedded", help="'embedded' (SmolLM2-135M), a model directory or file"
    )
    p.add_argument("--backend", default="hf", help="hf | vllm | openai")
    p.add_argument(
        "--backend-option",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help='extra backend config, e.g. base_url="http://127.0.0.1:8000/v1"',
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float)
    p.add_argument(
        "--max-tokens", type=int, dest="max_response_tokens", help="response budget per episode"
    )
    p.add_argument("--out", type=Path, help="results JSONL; an existing file is resumed")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--compare", nargs=2, metavar=("A", "B"), type=Path, help="compare two results files"
    )
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

    from thor.evaluation import EvalConfig, compare_runs, evaluate, summary_table

    console = Console()
    if args.compare:
        first, second = args.compare
        console.print(compare_runs(first, second, console=console))
        return 0
    cfg = EvalConfig(
        benchmark=args.benchmark,
        agent=args.agent,
        preset=args.preset,
        k=args.k,
        limit=args.limit,
        model=args.model,
        backend=args.backend,
        backend_options=_options(args.backend_option),
        seed=args.seed,
        temperature=args.temperature,
        max_response_tokens=args.max_response_tokens,
        out=args.out,
        progress=not args.no_progress,
    )
    summary = evaluate(cfg)
    console.print(summary_table({f"{cfg.agent} on {cfg.benchmark}": summary}))
    if cfg.out:
        console.print(f"results: {cfg.out}")
    return 0
