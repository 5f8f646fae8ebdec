"""Helpers of the server tests: the two servers on loopback, and raw HTTP over a socket."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from thor.agents.backends.server import PolicyServer
from thor.serving import ServerLimits
from thor.testing import ScriptedPolicy, tiny_tokenizer

LIGHT_SANDBOX: dict[str, Any] = {"preimport": [], "warmup": "", "pool_size": 0}


@dataclass
class Target:
    """One server under test: where it listens and a valid request to it."""

    name: str
    host: str
    port: int
    path: str
    good_body: bytes
    health: str


def require_isolation() -> None:
    from thor.envs.sandbox import isolation_problems

    problems = isolation_problems()
    if problems:
        if os.environ.get("THOR_REQUIRE_ISOLATION", "") not in ("", "0"):
            pytest.fail("sandbox isolation unavailable: " + "; ".join(problems))
        pytest.skip("sandbox isolation unavailable: " + "; ".join(problems))


@contextmanager
def policy_server(limits: ServerLimits | None = None, **kw: Any) -> Iterator[Target]:
    policy = ScriptedPolicy(lambda p: "four", tokenizer=tiny_tokenizer())
    with PolicyServer(policy, port=0, model_name="toy", limits=limits, **kw) as srv:
        body = b'{"model": "toy", "prompt": "2 + 2 =", "max_tokens": 4}'
        yield Target("thor serve", srv.host, srv.port, "/v1/completions", body, "/health")


@contextmanager
def sandbox_server(limits: ServerLimits | None = None, **kw: Any) -> Iterator[Target]:
    from thor.envs.sandbox.server import SandboxServer

    require_isolation()
    with SandboxServer(LIGHT_SANDBOX, port=0, limits=limits, **kw) as srv:
        srv.start()
        host, port = srv.httpd.server_address[:2]
        body = b'{"code": "print(6 * 7)", "language": "python"}'
        yield Target("thor sandbox serve", str(host), int(port), "/run_code", body, "/v1/ping")


def connect(t: Target, timeout: float = 10) -> socket.socket:
    return socket.create_connection((t.host, t.port), timeout=timeout)


def request(path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
    """A raw HTTP/1.1 request; ``Content-Length`` is added for a body unless given."""
    hdrs = {"Host": "x", **(headers or {})}
    if body is not None and not any(k.lower() == "content-length" for k in hdrs):
        hdrs["Content-Length"] = str(len(body))
    method = "POST" if body is not None else "GET"
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    return head.encode() + b"\r\n" + (body or b"")


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes] | None:
    """One response from ``sock`` (None when the server closed first)."""
    f = sock.makefile("rb")
    line = f.readline()
    if not line:
        return None
    status = int(line.split()[1])
    headers: dict[str, str] = {}
    while (h := f.readline()) not in (b"\r\n", b"\n", b""):
        k, _, v = h.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while (size := int(f.readline().strip(), 16)) > 0:
            body += f.read(size)
            f.readline()
        f.readline()
    else:
        body = f.read(int(headers.get("content-length", "0")))
    return status, headers, body


def closed_by_server(sock: socket.socket, within: float = 10) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``within`` seconds."""
    sock.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def exchange(t: Target, raw: bytes, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` on a fresh connection and read one response."""
    with connect(t, timeout) as sock:
        sock.sendall(raw)
        got = read_response(sock)
    assert got is not None, "the server closed without answering"
    return got
