"""Batched rollouts vs one episode at a time, with the real embedded model on this machine.

The same TIR episodes (greedy decoding, so both runs generate the same tokens up to floating-point
effects of padding) are run twice, side by side in one process:

- thor's batched engine: many episodes in flight, generation batched across them, code running in
  the sandbox while another cohort generates;
- one at a time: batch size 1, one cohort (how a simple agent loop runs).

Target (issue 5): >= 3x episodes/s. Also reports tokens/s and how many episodes came out identical.

    python benchmarks/rollout.py            # 16 GSM8K problems, 256-token budget
    python benchmarks/rollout.py --quick    # 6 problems, 128 tokens
"""

from __future__ import annotations

import argparse
import time

import torch

from thor.agents import RolloutConfig, RolloutEngine, RolloutTask
from thor.agents.backends.hf import HFPolicy
from thor.data import load_problems


def run(
    policy: HFPolicy, tasks: list[RolloutTask], *, batch: int, cohorts: int, tokens: int
) -> tuple[float, list]:
    cfg = RolloutConfig(
        agent={"name": "tir", "temperature": 0.0},
        env={"max_response_tokens": tokens},
        batch_size=batch,
        cohorts=cohorts,
    )
    with RolloutEngine(policy, cfg) as engine:
        t0 = time.perf_counter()
        eps = engine.run(tasks, seed=0)
        return time.perf_counter() - t0, eps


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.problems, args.max_tokens = 6, 128
    if args.threads:
        torch.set_num_threads(args.threads)
    policy = HFPolicy(model="embedded")
    tasks = [RolloutTask(problem=p) for p in load_problems("gsm8k", limit=args.problems)]
    run(
        policy, tasks[:2], batch=2, cohorts=1, tokens=32
    )  # warm-up: sandbox pool, verifier, kernels
    t_batched, batched = run(policy, tasks, batch=args.batch, cohorts=2, tokens=args.max_tokens)
    t_single, single = run(policy, tasks, batch=1, cohorts=1, tokens=args.max_tokens)

    def toks(eps: list) -> int:
        return sum(len(t.token_ids or []) for e in eps for t in e.turns)

    same = sum(a.response_text() == b.response_text() for a, b in zip(batched, single, strict=True))
    n = len(tasks)
    print(
        f"SmolLM2-135M (HF backend, {policy.model.dtype}, {torch.get_num_threads()} threads), {n} GSM8K "
        f"problems, tir agent, greedy, {args.max_tokens}-token budget"
    )
    print(f"{'run':<28}{'wall s':>8}{'episodes/s':>12}{'tokens/s':>10}{'calls':>7}")
    for name, t, eps in (
        ("batched engine", t_batched, batched),
        ("one episode at a time", t_single, single),
    ):
        calls = sum(e.num_calls for e in eps)
        print(f"{name:<28}{t:>8.1f}{n / t:>12.3f}{toks(eps) / t:>10.1f}{calls:>7}")
    print(
        f"speed-up (episodes/s): {t_single / t_batched:.2f}x (target >= 3x); identical episodes: {same}/{n}"
    )


if __name__ == "__main__":
    main()
