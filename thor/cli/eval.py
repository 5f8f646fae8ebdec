"""``thor eval``: evaluate an agent on a benchmark (a thin layer over thor.evaluation.evaluate).

The evaluation is an :class:`~thor.evaluation.EvalConfig`: from ``--config FILE``, the shortcut
flags below (each sets one field; a flag left out keeps the config's default, which lives in
:class:`~thor.evaluation.EvalConfig` only) and ``--set key.path=value`` (last). ``--import`` loads
modules or files that register agents, envs, tools, rewards or backends, which the config may then
name (``--agent retry``, ``--env examples/SolveTIR-v0``).
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


def register(sub: argparse._SubParsersAction) -> None:
    from thor.data.loaders import BENCHMARKS

    p = sub.add_parser(
        "eval",
        help="evaluate an agent on a benchmark (resumable)",
        description="Run an agent over a benchmark and score it. Flags set EvalConfig fields; "
        "--config FILE and --set KEY=VALUE set any field. Results always go to a JSONL file "
        "(--out, else runs/eval/BENCHMARK-AGENT-HASH.jsonl, printed) that the same command "
        "resumes. On a machine without a GPU the cpu preset is used unless --preset or --config "
        f"says otherwise. Shipped benchmarks: {', '.join(sorted(BENCHMARKS))}.",
        argument_default=argparse.SUPPRESS,
    )
    add_config_arguments(p)
    p.add_argument("--benchmark", help="shipped benchmark name or a JSONL file (math500)")
    p.add_argument("--agent", help="a registered agent: cot, tir (default), thor, a plugin's")
    p.add_argument("--env", help="a registered env id (default: the agent's env)")
    p.add_argument(
        "--preset", choices=["paper", "cpu"], help="paper: T 0.6, 4096 tokens, k 4; cpu: 512, k 1"
    )
    p.add_argument("--k", type=int, help="samples per problem (Avg@k)")
    p.add_argument("--limit", type=int, help="first N problems")
    p.add_argument("--model", help="'embedded' (SmolLM2-135M, default), a model directory or file")
    p.add_argument("--backend", help="a registered policy backend: hf (default), vllm, openai")
    p.add_argument(
        "--backend-option",
        dest="backend_option",
        action="append",
        metavar="KEY=JSON",
        help='extra backend config, e.g. base_url="http://127.0.0.1:8000/v1"',
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument(
        "--max-tokens", type=int, dest="max_response_tokens", help="response budget per episode"
    )
    p.add_argument("--out", type=Path, help="results JSONL; an existing file is resumed")
    p.add_argument("--no-progress", dest="no_progress", action="store_true")
    p.add_argument(
        "--compare", nargs=2, metavar=("A", "B"), type=Path, help="compare two results files"
    )
    p.set_defaults(func=run, overrides=[], imports=[], config=None, threads=None)


def _has_gpu() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def _estimate(cfg: Any) -> str:
    """What is about to run: episodes and the token budget, and where the results go."""
    from thor.data.loaders import load_problems

    n = len(load_problems(cfg.benchmark, limit=cfg.limit))
    episodes = n * cfg.k
    return (
        f"{cfg.agent} on {cfg.benchmark}: {n} problems x {cfg.k} samples = {episodes} episodes, "
        f"up to {cfg.max_response_tokens:,} tokens each ({episodes * cfg.max_response_tokens:,} at "
        f"most); results: {cfg.out} (run the same command again to resume)"
    )


SHORTCUTS = (
    "benchmark",
    "agent",
    "preset",
    "k",
    "limit",
    "model",
    "backend",
    "seed",
    "temperature",
    "max_response_tokens",
    "out",
)


def shortcut_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The EvalConfig fields the shortcut flags set (only the flags given)."""
    given = vars(args)
    fields: dict[str, Any] = {k: given[k] for k in SHORTCUTS if k in given}
    if "backend_option" in given:
        fields["backend_options"] = key_json_options(given["backend_option"])
    if given.get("no_progress"):
        fields["progress"] = False
    if "env" in given:
        fields["rollout"] = {"env": {"name": given["env"]}}
    return fields


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from thor.evaluation import EvalConfig, compare_runs, evaluate, summary_table
    from thor.evaluation.runner import default_results_path

    console = Console()
    if getattr(args, "compare", None):
        first, second = args.compare
        console.print(compare_runs(first, second, console=console))
        return 0
    setup_run(args)
    fields = shortcut_fields(args)
    auto_cpu = args.config is None and "preset" not in fields and not _has_gpu()
    if auto_cpu:
        fields["preset"] = "cpu"
    cfg = load_run_config(EvalConfig, args.config, args.overrides, fields)
    if cfg.out is None:
        cfg = cfg.model_copy(update={"out": default_results_path(cfg)})
    if getattr(args, "print_config", False):
        print_config(cfg)
        return 0
    if auto_cpu:
        console.print("no GPU here: the cpu preset (k 1, 512 tokens; --preset paper to override)")
    console.print(_estimate(cfg))
    summary = evaluate(cfg)
    console.print(summary_table({f"{cfg.agent} on {cfg.benchmark}": summary}))
    if cfg.out:
        console.print(f"results: {cfg.out}")
    return 0
