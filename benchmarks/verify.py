"""Answer verification throughput: thor's batch verifier vs a plain math-verify loop, side by side.

Pairs: every equal rendering and near miss (:mod:`thor.rewards.renderings`) of the MATH500 gold
answers, made unique. Both sides start cold (thor's verdict cache empty; its workers started and
warmed up on unrelated pairs before the clock starts, as a long-running trainer's would be).

- baseline: ``math_verify.parse`` of gold and prediction (each as the content of a ``\\boxed{}``,
  math-verify's default extraction and timeouts) and ``math_verify.verify``, in a loop, one core;
- thor batch: ``Verifier.verify_batch`` over all pairs (throughput);
- thor single: ``Verifier.verify`` one pair at a time on a second cold verifier (latency);
- thor cached: ``verify_batch`` again over the same pairs (every verdict from the cache).

Agreement counts pairs where thor and the loop give the same verdict; disagreements are split into
listed deviations (thor's reason names a correction: ``thor:``, ``normal form:``; see
docs/verification.md) and unexplained ones (listed). Accuracy is against the rendering's intent
(equal rendering -> equal, near miss -> not equal).

Usage::

    python benchmarks/verify.py            # all MATH500 golds (about 1,800 pairs)
    python benchmarks/verify.py --quick    # 60 golds, for a smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass

from thor.data import load_problems
from thor.rewards import Verifier, VerifierConfig
from thor.rewards.renderings import equal_renderings, near_misses


@dataclass
class Run:
    name: str
    seconds: float
    verdicts: list[bool]
    latencies: list[float]

    @property
    def rate(self) -> float:
        return len(self.verdicts) / self.seconds if self.seconds else float("inf")


def build_pairs(limit: int | None) -> tuple[list[tuple[str, str]], list[bool]]:
    golds = sorted({p.answer for p in load_problems("math500") if p.answer})
    if limit:
        golds = golds[:limit]
    seen: set[tuple[str, str]] = set()
    pairs: list[tuple[str, str]] = []
    intent: list[bool] = []
    for g in golds:
        for expected, forms in ((True, equal_renderings(g)), (False, near_misses(g))):
            for _, text in forms:
                if (g, text) not in seen:
                    seen.add((g, text))
                    pairs.append((g, text))
                    intent.append(expected)
    return pairs, intent


def run_baseline(pairs: list[tuple[str, str]]) -> Run:
    import logging

    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    parse("\\boxed{1}")  # import-time work out of the clock
    verdicts, latencies = [], []
    start = time.perf_counter()
    for g, p in pairs:
        t = time.perf_counter()
        ok = verify(parse("\\boxed{" + g + "}"), parse("\\boxed{" + p + "}"))
        latencies.append(time.perf_counter() - t)
        verdicts.append(bool(ok))
    return Run("math-verify loop", time.perf_counter() - start, verdicts, latencies)


def warm(v: Verifier) -> None:
    v.warm_up()
    v.verify_batch([(f"\\frac{{{i}}}{{7}}", f"{i / 7:.7f}") for i in range(1, 4 * v.workers + 1)])


def run_thor(
    pairs: list[tuple[str, str]], cfg: VerifierConfig
) -> tuple[Run, Run, Run, dict[str, int]]:
    with Verifier(cfg) as v:
        warm(v)
        start = time.perf_counter()
        verdicts = v.verify_batch(pairs)
        batch = Run(
            "thor verify_batch", time.perf_counter() - start, [x.equal for x in verdicts], []
        )
        batch.reasons = [x.reason for x in verdicts]  # type: ignore[attr-defined]
        start = time.perf_counter()
        again = v.verify_batch(pairs)
        cached = Run("thor cached", time.perf_counter() - start, [x.equal for x in again], [])
        info = v.cache_info()
        info["cached_hits_in_rerun"] = sum(x.cached for x in again)
    with Verifier(cfg) as v:
        warm(v)
        latencies, eq = [], []
        start = time.perf_counter()
        for g, p in pairs:
            t = time.perf_counter()
            eq.append(v.verify(g, p).equal)
            latencies.append(time.perf_counter() - t)
        single = Run("thor verify (1 by 1)", time.perf_counter() - start, eq, latencies)
    return batch, single, cached, info


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.system()} {os.cpu_count()} CPUs {model}, python {sys.version.split()[0]}, load {load:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="60 golds instead of all of MATH500")
    ap.add_argument(
        "--workers", type=int, default=None, help="thor worker processes (default min(2, CPUs))"
    )
    ap.add_argument("--timeout", type=float, default=5.0, help="thor's per-pair timeout, seconds")
    args = ap.parse_args()
    pairs, intent = build_pairs(60 if args.quick else None)
    cfg = VerifierConfig(workers=args.workers, timeout_s=args.timeout)
    print(f"machine: {machine()}")
    print(
        f"pairs: {len(pairs)} unique ({sum(intent)} equal renderings, {len(intent) - sum(intent)} near misses)"
    )
    base = run_baseline(pairs)
    batch, single, cached, info = run_thor(pairs, cfg)

    print(
        f"\n{'run':24} {'pairs/s':>10} {'x loop':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'accuracy':>9}"
    )
    for r in (base, batch, single, cached):
        acc = sum(a == b for a, b in zip(r.verdicts, intent, strict=True)) / len(intent)
        lat = [x * 1000 for x in r.latencies]
        print(
            f"{r.name:24} {r.rate:10.1f} {r.rate / base.rate:8.2f} {pct(lat, 50):8.2f} {pct(lat, 99):8.2f} "
            f"{max(lat) if lat else float('nan'):8.1f} {acc:9.3f}"
        )
    reasons: list[str] = batch.reasons  # type: ignore[attr-defined]
    differ = [
        i for i, (a, b) in enumerate(zip(base.verdicts, batch.verdicts, strict=True)) if a != b
    ]
    listed = [i for i in differ if reasons[i].startswith(("thor:", "normal form:", "timeout:"))]
    other = [i for i in differ if i not in set(listed)]
    agree = 1 - len(differ) / len(pairs)
    agree_listed = 1 - len(other) / len(pairs)
    print(
        f"\nagreement with the loop: {agree:.4f} of pairs; {agree_listed:.4f} apart from listed deviations"
    )
    print(f"  listed deviations: {len(listed)}; unexplained: {len(other)}")
    for i in other[:20]:
        g, p = pairs[i]
        print(
            f"    gold={g!r} pred={p!r} loop={base.verdicts[i]} thor={batch.verdicts[i]} ({reasons[i]})"
        )
    # the pairs that needed a worker (math-verify in a worker process), against the loop's
    # time on the same pairs: the part of the speed-up that owes nothing to the caller-side checks
    hard = [
        i
        for i, r in enumerate(reasons)
        if not r.startswith(("integers:", "normal form:", "refused:"))
    ]
    if hard:
        with Verifier(cfg) as v:
            warm(v)
            start = time.perf_counter()
            v.verify_batch([pairs[i] for i in hard])
            hard_rate = len(hard) / (time.perf_counter() - start)
        base_hard = len(hard) / sum(base.latencies[i] for i in hard)
        print(
            f"pairs that needed a worker: {len(hard)} of {len(pairs)}; on those, thor verify_batch "
            f"{hard_rate:.1f} pairs/s vs loop {base_hard:.1f} pairs/s ({hard_rate / base_hard:.2f}x)"
        )
    print(f"thor cache: {info}")
    p99 = pct([x for x in single.latencies], 99)
    print(
        f"p99 latency {p99 * 1000:.1f} ms vs timeout {args.timeout * 1000:.0f} ms: {'ok' if p99 <= args.timeout else 'ABOVE'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
