"""Sandbox benchmarks: thor's sessions against the ways other harnesses run code, side by side.

    .venv/bin/python benchmarks/sandbox.py            # the full run (a few minutes)
    .venv/bin/python benchmarks/sandbox.py --quick    # a small run that checks the script works

Comparisons (every figure of one run comes from the same machine, minutes apart):

1. thor session vs a fresh isolated ``python -c`` subprocess per cell (how GEM and SkyRL run
   code): both under bubblewrap with the same allowlist and an unprivileged uid; trivial and
   ``sympy.factor`` cells; 1 and 2 concurrent sessions. Target: >= 20x on trivial cells.
2. Continuing a 5-cell episode after a failure: ``fork()`` vs replaying the earlier cells in a
   fresh session (how the Qwen2.5-Math harness keeps state); the same at 100 earlier cells.
3. 1,000 back-to-back ``open()`` and ``fork()`` calls: p50 and p99. Target: p50 <= 5 ms each.
4. Isolation on vs off with the same template and worker protocol. Target: <= 20% cost.

Timings on a shared or busy machine are noisy: read the ratios, and re-run on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from thor.envs.sandbox import LocalSandbox
from thor.envs.sandbox.config import LocalSandboxConfig
from thor.envs.sandbox.isolation import bwrap_command

TRIVIAL = "x = 1 + 1\nprint(x)"
SYMPY = "import sympy\nx = sympy.Symbol('x')\nprint(sympy.factor(x**4 - 1))"
EPISODE_CELL = "import sympy\nx = sympy.Symbol('x')\nr{i} = sympy.expand((x + {i}) ** 6)\nprint(len(str(r{i})))"


@dataclass
class Row:
    comparison: str
    variant: str
    conc: int
    n: int
    total_s: float
    lat: list[float]
    base: str | None = None  # the variant this row's throughput is compared with

    @property
    def rate(self) -> float:
        return self.n / self.total_s if self.total_s > 0 else float("nan")

    def pct(self, q: float) -> float:
        s = sorted(self.lat)
        return s[min(len(s) - 1, int(q * len(s)))] * 1000 if s else float("nan")


def run_concurrent(
    conc: int, n: int, make: Callable[[], Callable[[], None]]
) -> tuple[float, list[float]]:
    """``conc`` threads, each with its own worker from ``make()``, ``n`` calls in all."""
    lat: list[float] = []
    lock = threading.Lock()
    per = [n // conc + (1 if i < n % conc else 0) for i in range(conc)]
    workers = [make() for _ in range(conc)]

    def loop(work: Callable[[], None], count: int) -> None:
        mine = []
        for _ in range(count):
            t0 = time.perf_counter()
            work()
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    threads = [
        threading.Thread(target=loop, args=(w, c)) for w, c in zip(workers, per, strict=True)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, lat


# -- 1. sessions vs a subprocess per cell ------------------------------------------------------
def run_subprocess(code: str, uid: int) -> bool:
    """A fresh python under bubblewrap (thor's allowlist and namespaces), as an unprivileged uid."""
    drop = [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
    ]
    launch = bwrap_command(LocalSandboxConfig(), [*drop, sys.executable, "-I", "-c", code])
    try:
        done = subprocess.run(
            launch.argv, pass_fds=launch.pass_fds, capture_output=True, check=False
        )
    finally:
        launch.close_fds()
    return done.returncode == 0


def bench_vs_subprocess(sb: LocalSandbox, rows: list[Row], sizes: dict[str, int]) -> None:
    for label, code, n_thor, n_sub in (
        ("trivial", TRIVIAL, sizes["trivial"], sizes["sub_trivial"]),
        ("sympy.factor", SYMPY, sizes["sympy"], sizes["sub_sympy"]),
    ):
        for conc in (1, 2):

            def make_session(code: str = code) -> Callable[[], None]:
                s = sb.open()
                s.run(code)  # warm: the first cell of a session is not what is measured
                return lambda: _check(s.run(code).ok)

            total, lat = run_concurrent(conc, n_thor, make_session)
            rows.append(
                Row(
                    f"session vs subprocess, {label}",
                    "thor session",
                    conc,
                    n_thor,
                    total,
                    lat,
                    "subprocess",
                )
            )

            def make_sub(code: str = code) -> Callable[[], None]:
                return lambda: _check(run_subprocess(code, 65534))

            total, lat = run_concurrent(conc, n_sub, make_sub)
            rows.append(
                Row(f"session vs subprocess, {label}", "subprocess", conc, n_sub, total, lat)
            )


def _check(ok: bool) -> None:
    if not ok:
        raise RuntimeError("a benchmark cell failed")


# -- 2. fork vs replay -------------------------------------------------------------------------
def bench_fork_vs_replay(sb: LocalSandbox, rows: list[Row], reps: int) -> None:
    failing = "raise ValueError('a failed step')"
    for earlier in (5, 100):
        cells = [EPISODE_CELL.format(i=i) for i in range(earlier)]
        with sb.open() as s:
            for c in cells:
                s.run(c)
            s.run(failing)
            lat = []
            for _ in range(reps):
                t0 = time.perf_counter()
                with s.fork() as b:
                    _check(b.run("print(len(str(r0)))").ok)
                lat.append(time.perf_counter() - t0)
        rows.append(
            Row(
                f"continue after failure, {earlier} earlier cells",
                "fork()",
                1,
                reps,
                sum(lat),
                lat,
                "replay",
            )
        )
        lat = []
        for _ in range(reps):
            t0 = time.perf_counter()
            with sb.open() as fresh:
                for c in cells:
                    fresh.run(c)
                _check(fresh.run("print(len(str(r0)))").ok)
            lat.append(time.perf_counter() - t0)
        rows.append(
            Row(
                f"continue after failure, {earlier} earlier cells", "replay", 1, reps, sum(lat), lat
            )
        )


# -- 3. open() and fork() latency --------------------------------------------------------------
def bench_open_fork(sb: LocalSandbox, rows: list[Row], n: int) -> None:
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        s = sb.open()
        lat.append(time.perf_counter() - t0)
        s.close()
    rows.append(Row(f"{n} back-to-back calls", "open()", 1, n, sum(lat), lat))
    lat = []
    with sb.open() as s:
        s.run("import sympy\nstate = [sympy.Integer(i) for i in range(1000)]")
        for _ in range(n):
            t0 = time.perf_counter()
            b = s.fork()
            lat.append(time.perf_counter() - t0)
            b.close()
        rows.append(Row(f"{n} back-to-back calls", "fork()", 1, n, sum(lat), lat))
        # the floor: one bare os.fork() of the same interpreter, until the child runs (a branch
        # is one of them; two, a guardian and the interpreter, on kernels before Linux 6.15)
        out = s.run(_BARE_FORKS.format(n=min(n, 300))).stdout
        lat = json.loads(out)
        rows.append(Row("  floor: bare os.fork() in it", "os.fork()", 1, len(lat), sum(lat), lat))


_BARE_FORKS = """
import json, os, time
lat = []
for _ in range({n}):
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.write(w, b"x")
        os._exit(0)
    os.read(r, 1)
    lat.append(time.perf_counter() - t0)
    os.waitpid(pid, 0)
    os.close(r)
    os.close(w)
print(json.dumps(lat))
"""


# -- 4. isolation on vs off --------------------------------------------------------------------
def bench_isolation(
    on: LocalSandbox, off: LocalSandbox, rows: list[Row], sizes: dict[str, int]
) -> None:
    for label, code, n in (
        ("trivial", TRIVIAL, sizes["trivial"]),
        ("sympy.factor", SYMPY, sizes["sympy"]),
    ):
        for conc in (1, 2):
            for name, sb in (("isolation on", on), ("isolation off", off)):

                def make(sb: LocalSandbox = sb, code: str = code) -> Callable[[], None]:
                    s = sb.open()
                    s.run(code)
                    return lambda: _check(s.run(code).ok)

                total, lat = run_concurrent(conc, n, make)
                base = "isolation off" if name == "isolation on" else None
                rows.append(Row(f"same protocol, {label}", name, conc, n, total, lat, base))


def render(rows: list[Row]) -> str:
    head = f"{'comparison':<42} {'variant':<14} {'conc':>4} {'n':>6} {'cells/s':>9} {'p50 ms':>8} {'p99 ms':>8}  ratio"
    out = [head, "-" * len(head)]
    for r in rows:
        ratio = ""
        if r.base is not None:
            other = next(
                (
                    o
                    for o in rows
                    if o.comparison == r.comparison and o.variant == r.base and o.conc == r.conc
                ),
                None,
            )
            if other is not None:
                if "calls" in r.comparison or "after failure" in r.comparison:
                    ratio = f"{statistics.median(other.lat) / statistics.median(r.lat):.1f}x faster (p50)"
                else:
                    ratio = f"{r.rate / other.rate:.2f}x throughput"
        out.append(
            f"{r.comparison:<42} {r.variant:<14} {r.conc:>4} {r.n:>6} {r.rate:>9.1f} {r.pct(0.5):>8.2f} {r.pct(0.99):>8.2f}  {ratio}"
        )
    return "\n".join(out)


def machine() -> str:
    load = os.getloadavg()
    return (
        f"{platform.node()}: {platform.system()} {platform.release()}, {os.cpu_count()} cpus, "
        f"python {platform.python_version()}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: checks the script, not the machine"
    )
    parser.add_argument("--only", choices=["subprocess", "fork", "latency", "isolation"], nargs="*")
    args = parser.parse_args()
    q = args.quick
    sizes = {
        "trivial": 300 if q else 3000,
        "sympy": 60 if q else 600,
        "sub_trivial": 10 if q else 60,
        "sub_sympy": 4 if q else 20,
        "replay_reps": 3 if q else 10,
        "calls": 100 if q else 1000,
    }
    only = set(args.only or ["subprocess", "fork", "latency", "isolation"])
    print(machine())
    rows: list[Row] = []
    cfg = {"limits": {"timeout_s": 60}, "pool_size": 4}
    with LocalSandbox(cfg) as sb:
        how = "a guardian and the interpreter" if sb._branch_guardian else "one fork"
        print(f"a fork() branch is {how} here")
        if "subprocess" in only:
            bench_vs_subprocess(sb, rows, sizes)
        if "fork" in only:
            bench_fork_vs_replay(sb, rows, sizes["replay_reps"])
        if "latency" in only:
            bench_open_fork(sb, rows, sizes["calls"])
        if "isolation" in only:
            os.environ.pop("THOR_REQUIRE_ISOLATION", None)
            with LocalSandbox({**cfg, "require_isolation": False}) as off:
                bench_isolation(sb, off, rows, sizes)
    print(render(rows))
    print(f"after: {machine()}")


if __name__ == "__main__":
    main()
