"""HTTP server benchmarks: both thor servers under bursts of concurrent requests on loopback.

    .venv/bin/python benchmarks/servers.py            # the full run (a minute or two)
    .venv/bin/python benchmarks/servers.py --quick    # a small run that checks the script works

Each row fires ``concurrency`` requests at once (threads released together by a barrier, one
fresh connection per request, as bursty RL clients do) until ``requests`` are done, and prints
failures (refused, reset, timed out or non-200), throughput and p50 / p99 latency:

1. the HTTP layer alone: a trivial JSON handler on :class:`thor.serving.BoundedHTTPServer` vs
   the same handler on the standard library's ``ThreadingHTTPServer`` (listen backlog 5, a thread
   per connection, no deadlines: what both servers used before). Target: 0 failures at 256.
2. ``thor serve`` (the tiny model from ``thor.testing``, 2 tokens per request).
3. ``thor sandbox serve`` (a light sandbox: ``print(6 * 7)`` per request, 4 cells at once).

Timings on a shared or busy machine are noisy: read the failures and the ratios.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from thor.serving import BoundedHTTPServer, JSONRequestHandler, ServerLimits


@dataclass
class LoadResult:
    """What one burst measured."""

    requests: int
    wall_s: float
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s > 0 else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load(
    host: str,
    port: int,
    path: str,
    body: bytes,
    *,
    concurrency: int,
    requests: int,
    timeout_s: float = 120.0,
) -> LoadResult:
    """Fire ``requests`` POSTs, ``concurrency`` at a time, each on a fresh connection."""
    counter = iter(range(requests))
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency)
    result = LoadResult(requests, 0.0)

    def one() -> None:
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        try:
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            ok = resp.status == 200
            failure = None if ok else f"HTTP {resp.status}"
        except (OSError, http.client.HTTPException) as err:
            failure = f"{type(err).__name__}: {err}"
        finally:
            conn.close()
        with lock:
            if failure is None:
                result.latencies.append(time.perf_counter() - t0)
            else:
                result.failures.append(failure)

    def worker() -> None:
        barrier.wait()
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            one()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s * (requests // concurrency + 2))
    result.wall_s = time.perf_counter() - start
    return result


@dataclass
class Target:
    name: str
    host: str
    port: int
    path: str
    body: bytes


class _Trivial(JSONRequestHandler):
    def do_POST(self) -> None:
        self.read_json(1 << 20)
        self.send_json(200, {"ok": True})


class _StdlibTrivial(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def _serving(httpd: ThreadingHTTPServer | BoundedHTTPServer, name: str) -> Iterator[Target]:
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = httpd.server_address[:2]
        yield Target(name, str(host), int(port), "/", b"{}")
    finally:
        httpd.shutdown()
        httpd.server_close()


def stdlib_trivial() -> AbstractContextManager[Target]:
    return _serving(
        ThreadingHTTPServer(("127.0.0.1", 0), _StdlibTrivial), "stdlib ThreadingHTTPServer"
    )


def thor_trivial() -> AbstractContextManager[Target]:
    return _serving(BoundedHTTPServer(("127.0.0.1", 0), _Trivial, ServerLimits()), "thor.serving")


@contextmanager
def thor_serve() -> Iterator[Target]:
    from thor.agents.backends.hf import HFPolicy
    from thor.agents.backends.server import PolicyServer
    from thor.testing import tiny_model, tiny_tokenizer

    policy = HFPolicy.from_model(tiny_model(seed=4), tiny_tokenizer(), name="tiny")
    with PolicyServer(policy, port=0, model_name="tiny") as srv:
        body = {"model": "tiny", "prompt": "x = 1", "max_tokens": 2, "temperature": 0}
        yield Target(
            "thor serve (tiny model)",
            srv.host,
            srv.port,
            "/v1/completions",
            json.dumps(body).encode(),
        )


@contextmanager
def thor_sandbox_serve() -> Iterator[Target]:
    from thor.envs.sandbox.server import SandboxServer

    light = {"preimport": [], "warmup": "", "pool_size": 0}
    with SandboxServer(light, port=0) as srv:
        srv.start()
        host, port = srv.httpd.server_address[:2]
        body = json.dumps({"code": "print(6 * 7)", "language": "python"}).encode()
        yield Target("thor sandbox serve", str(host), int(port), "/run_code", body)


SERVERS: dict[str, Callable[[], AbstractContextManager[Target]]] = {
    "stdlib": stdlib_trivial,
    "http": thor_trivial,
    "serve": thor_serve,
    "sandbox": thor_sandbox_serve,
}


def bench(target: Target, levels: list[tuple[int, int]]) -> list[tuple[int, LoadResult]]:
    rows = []
    for conc, n in levels:
        res = load(target.host, target.port, target.path, target.body, concurrency=conc, requests=n)
        rows.append((conc, res))
        base = rows[0][1].per_s
        ratio = f"{res.per_s / base:5.2f}x" if base else "   -"
        print(
            f"{target.name:32} {conc:5} {n:6} {len(res.failures):5} {res.per_s:9.1f} {ratio} "
            f"{res.pct(0.5) * 1e3:9.1f} {res.pct(0.99) * 1e3:9.1f}",
            flush=True,
        )
        if res.failures:
            print(f"{'':32} first failures: {sorted(set(res.failures))[:3]}", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small bursts: checks the script works")
    p.add_argument("--servers", default=",".join(SERVERS), help=f"subset of {','.join(SERVERS)}")
    args = p.parse_args()
    scale = 1 if args.quick else 4
    levels = [(1, 16 * scale), (64, 64 * scale), (256, 256 * scale)]
    print(
        f"# {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, python {platform.python_version()}"
    )
    print(f"# load average before: {os.getloadavg()}")
    print(
        f"{'server':32} {'conc':>5} {'reqs':>6} {'fail':>5} {'req/s':>9} {'vs c1':>6} {'p50 ms':>9} {'p99 ms':>9}"
    )
    for key in args.servers.split(","):
        with SERVERS[key]() as target:
            bench(target, levels)
    print(f"# load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
