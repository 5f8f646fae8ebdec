"""TIRGen throughput: the actor's steps batched across problems vs one problem at a time.

Runs the rule-critic path (the one the demo uses) on synthetic problems with a real actor, once
with ``concurrency=1`` and once with ``concurrency=C``, difficulty filter off (it is the ``cot``
agent's cost, measured by ``benchmarks`` of the agents), and prints a side-by-side table.

Usage: python benchmarks/tirgen.py [--problems 16] [--concurrency 16] [--actor embedded]
Timings on a shared 2-core machine are noisy: compare the ratio, and re-run on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def run_once(actor: Any, n: int, concurrency: int, max_tokens: int, out: Path) -> dict[str, float]:
    from thor.data.tirgen import RuleCritic, TirgenConfig, run_tirgen

    cfg = TirgenConfig(
        problems="synthetic_train",
        limit=n,
        out=out,
        preset="cpu",
        max_response_tokens=max_tokens,
        concurrency=concurrency,
        difficulty=False,
        progress=False,
    )
    calls0 = getattr(actor, "_bench_calls", 0)
    t0 = time.perf_counter()
    funnel = run_tirgen(cfg, actor=actor, critic=RuleCritic())
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    tokens = sum(a.get("actor_tokens", 0) for r in rows for a in r.get("attempts", []))
    return {
        "wall_s": wall,
        "actor_tokens": tokens,
        "tokens_per_s": tokens / wall if wall else 0.0,
        "problems_per_min": 60 * n / wall if wall else 0.0,
        "samples": funnel.samples,
        "blocks_run": funnel.events.get("blocks_run", 0),
        "generate_calls": getattr(actor, "_bench_calls", 0) - calls0,
    }


class _Counting:
    """Counts generate calls of a policy (forwarding everything else)."""

    def __init__(self, policy: Any) -> None:
        self._p = policy
        self._bench_calls = 0
        self.name = policy.name
        self.eos_token_ids = policy.eos_token_ids

    def generate(self, prompts: Any, params: Any) -> Any:
        self._bench_calls += 1
        return self._p.generate(prompts, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._p, name)

    def close(self) -> None:  # the benchmark closes the real policy itself
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=384, help="actor tokens per attempt")
    ap.add_argument("--actor", default="embedded")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from thor.data.tirgen import build_policy

    policy = build_policy("hf", args.actor)
    actor = _Counting(policy)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for c in (1, args.concurrency):
            results[c] = run_once(actor, args.problems, c, args.max_tokens, Path(tmp) / f"c{c}")
    policy.close()
    one, many = results[1], results[args.concurrency]
    t = Table(title=f"TIRGen, rule critic, {args.problems} synthetic problems, actor {args.actor}")
    t.add_column("metric")
    t.add_column("concurrency 1", justify="right")
    t.add_column(f"concurrency {args.concurrency}", justify="right")
    t.add_column("ratio", justify="right")
    for key in one:
        a, b = float(one[key]), float(many[key])
        t.add_row(key, f"{a:.4g}", f"{b:.4g}", f"{b / a:.2f}x" if a else "-")
    Console().print(t)


if __name__ == "__main__":
    main()
