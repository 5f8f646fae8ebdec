"""Bounded load tests (loopback): 256 concurrent requests to each server, 0 failures.

The load generator is the one of ``benchmarks/servers.py`` (so the benchmark is tested too).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from serving_helpers import policy_server, require_isolation

pytestmark = pytest.mark.timeout(300)

CONCURRENCY = 256


def _bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "servers.py"
    spec = importlib.util.spec_from_file_location("thor_bench_servers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _bench()


def burst(host: str, port: int, path: str, body: bytes) -> None:
    res = bench.load(host, port, path, body, concurrency=CONCURRENCY, requests=CONCURRENCY)
    assert res.failures == [], sorted(set(res.failures))[:3]
    assert len(res.latencies) == CONCURRENCY


def test_the_http_layer_takes_a_burst_of_256() -> None:
    with bench.thor_trivial() as t:
        burst(t.host, t.port, t.path, t.body)


def test_thor_serve_takes_a_burst_of_256() -> None:
    with policy_server() as t:
        burst(t.host, t.port, t.path, t.good_body)


@pytest.mark.slow
def test_thor_serve_with_a_model_takes_a_burst_of_256() -> None:
    with bench.thor_serve() as t:
        burst(t.host, t.port, t.path, t.body)


@pytest.mark.slow
def test_thor_sandbox_serve_takes_a_burst_of_256() -> None:
    require_isolation()
    with bench.thor_sandbox_serve() as t:
        burst(t.host, t.port, t.path, t.body)
