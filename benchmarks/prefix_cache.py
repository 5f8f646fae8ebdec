"""The HF backend's prefix cache vs none, on the same weights in one process.

Two workloads, each run with and without the cache, alternating, side by side:

- ``turns``: B transcripts of R turns; each turn generates ``--step`` tokens (greedy) and appends
  a tool output, like the TIR loop and TIRGen's actor. Without the cache every turn prefills the
  whole transcript again; with it, only the new tokens. Also checks that both generate the same.
- ``tirgen``: ``run_tirgen`` with the rule critic on synthetic problems (difficulty stage off), the
  workload of ``thor tirgen --critic rule`` and of the demo's data stage.

Usage:
    python benchmarks/prefix_cache.py                       # turns: 32 rows x 6 turns of 64 tokens
    python benchmarks/prefix_cache.py --workload tirgen --problems 16
Timings on a shared 2-core machine are noisy: compare the ratio, and re-run on a quiet machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from thor.agents.backends.hf import HFPolicy
from thor.types import SamplingParams

TOOL_OUTPUT = "\n```output\n{n}\n```\n"


def turns(policy: HFPolicy, prompts: list[str], n_turns: int, step: int) -> tuple[float, list]:
    params = SamplingParams(max_tokens=step, temperature=0.0)
    ctx = [policy.encode(p) for p in prompts]
    outputs: list[list[int]] = [[] for _ in prompts]
    t0 = time.perf_counter()
    for t in range(n_turns):
        comps = policy.generate(ctx, params)
        for i, c in enumerate(comps):
            outputs[i] += c.token_ids
            ctx[i] = ctx[i] + c.token_ids + policy.encode(TOOL_OUTPUT.format(n=t * 37 + i))
    return time.perf_counter() - t0, outputs


def tirgen(policy: HFPolicy, n: int, concurrency: int, out: Path) -> tuple[float, Any]:
    from thor.data.tirgen import RuleCritic, TirgenConfig, run_tirgen

    cfg = TirgenConfig(
        problems="synthetic_train",
        limit=n,
        out=out,
        preset="cpu",
        concurrency=concurrency,
        difficulty=False,
        progress=False,
    )
    t0 = time.perf_counter()
    funnel = run_tirgen(cfg, actor=policy, critic=RuleCritic())
    return time.perf_counter() - t0, funnel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=["turns", "tirgen"], default="turns")
    ap.add_argument("--rows", type=int, default=32, help="turns: transcripts in the batch")
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--step", type=int, default=64, help="turns: tokens generated per turn")
    ap.add_argument("--problems", type=int, default=16, help="tirgen: synthetic problems")
    ap.add_argument("--concurrency", type=int, default=16, help="tirgen: problems in flight")
    ap.add_argument("--rounds", type=int, default=2, help="alternating with/without rounds")
    ap.add_argument("--model", default="embedded")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from thor.data import load_problems

    plain = HFPolicy(model=args.model, prefix_cache_mb=0)
    cached = HFPolicy.from_model(
        plain.model, plain.tokenizer, name=plain.name, prefix_cache_mb=4096
    )
    problems = load_problems("synthetic_train")[: args.rows]
    prompts = [
        plain.apply_chat_template([{"role": "user", "content": p.problem + " Use python."}])
        for p in problems
    ]
    walls: dict[str, list[float]] = {"without": [], "with": []}
    same = None
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = [("without", plain), ("with", cached)]
            for name, policy in order if r % 2 == 0 else order[::-1]:
                if cached.prefix_cache is not None:
                    cached.prefix_cache.clear()  # every round starts cold
                if args.workload == "turns":
                    wall, outs = turns(policy, prompts, args.turns, args.step)
                    same = outs if same is None else same
                    if outs != same:
                        print(f"round {r} {name}: tokens differ from the first run")
                else:
                    wall, funnel = tirgen(
                        policy, args.problems, args.concurrency, Path(tmp) / f"{name}-{r}"
                    )
                    print(f"round {r} {name}: {wall:.1f} s, {funnel.samples} samples")
                walls[name].append(wall)
    stats = cached.prefix_cache.stats if cached.prefix_cache is not None else None
    title = (
        f"prefix cache, {args.rows} rows x {args.turns} turns of {args.step} tokens"
        if args.workload == "turns"
        else f"prefix cache, TIRGen rule critic, {args.problems} problems, concurrency {args.concurrency}"
    )
    t = Table(title=f"{title}, model {args.model}")
    t.add_column("round")
    t.add_column("without (s)", justify="right")
    t.add_column("with (s)", justify="right")
    t.add_column("speed-up", justify="right")
    for r, (a, b) in enumerate(zip(walls["without"], walls["with"], strict=True)):
        t.add_row(str(r), f"{a:.1f}", f"{b:.1f}", f"{a / b:.2f}x")
    a, b = sum(walls["without"]), sum(walls["with"])
    t.add_row("all", f"{a:.1f}", f"{b:.1f}", f"{a / b:.2f}x")
    Console().print(t)
    if stats is not None:
        print(
            f"cache: {stats.hits}/{stats.lookups} lookups hit, "
            f"{stats.reused_fraction:.0%} of prompt tokens reused, {stats.evicted} evicted"
        )


if __name__ == "__main__":
    main()
