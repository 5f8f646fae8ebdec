"""Both HTTP servers (``thor serve``, ``thor sandbox serve``) against malformed requests and slow
or idle clients, over raw sockets on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_helpers import (
    Target,
    closed_by_server,
    connect,
    exchange,
    policy_server,
    read_response,
    request,
    sandbox_server,
)

from thor.errors import ConfigError
from thor.serving import MAX_INT_DIGITS, RequestError, ServerLimits, check_bind, parse_json

pytestmark = pytest.mark.timeout(120)

SERVERS: dict[str, Callable[..., AbstractContextManager[Target]]] = {
    "policy": policy_server,
    "sandbox": sandbox_server,
}


@pytest.fixture(scope="module", params=list(SERVERS))
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    with SERVERS[request.param]() as t:
        yield t


def test_a_good_request_then_another_on_the_same_connection(target: Target) -> None:
    with connect(target) as sock:
        for _ in range(3):
            sock.sendall(request(target.path, target.good_body))
            got = read_response(sock)
            assert got is not None and got[0] == 200


MALFORMED_LENGTHS = [
    ({"Content-Length": "-1"}, 400),
    ({"Content-Length": "abc"}, 400),
    ({"Content-Length": "+5"}, 400),
    ({"Content-Length": "1e3"}, 400),
    ({"Content-Length": "\u0663"}, 400),  # a digit to str.isdigit, not to HTTP
    ({"Content-Length": str(1 << 40)}, 413),
    ({"Content-Length": "9" * 5000}, 413),
    ({"Transfer-Encoding": "chunked"}, 411),
]


@pytest.mark.parametrize(("headers", "status"), MALFORMED_LENGTHS)
def test_malformed_lengths_get_a_4xx_and_a_closed_connection(
    target: Target, headers: dict[str, str], status: int
) -> None:
    # the "body" is a whole valid request: if it were parsed as one, a second response would come
    smuggled = request(target.health)
    raw = request(target.path, None, headers).replace(b"GET ", b"POST ", 1) + smuggled
    with connect(target) as sock:
        sock.sendall(raw)
        got = read_response(sock)
        assert got is not None and got[0] == status, got
        assert got[1].get("connection") == "close"
        assert closed_by_server(sock), "the refused body must never be read as the next request"


def test_a_post_without_a_length_is_411(target: Target) -> None:
    raw = f"POST {target.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    assert exchange(target, raw)[0] == 411


def test_conflicting_lengths_are_refused(target: Target) -> None:
    raw = request(target.path, target.good_body, {"Content-Length": str(len(target.good_body))})
    raw = raw.replace(b"\r\n\r\n", b"\r\nContent-Length: 3\r\n\r\n", 1)
    assert exchange(target, raw)[0] == 400


BAD_BODIES = [
    b"{not json",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a": ' * 70 + b"1" + b"}" * 70,
    b'{"code": ' + b"7" * 5000 + b"}",
    b'{"code": NaN}',
    b'{"x": 1e999}',
    b"\xff\xfe{}",
    b"",
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=lambda b: repr(b[:20]))
def test_bad_bodies_get_a_400_and_the_connection_stays_usable(target: Target, body: bytes) -> None:
    with connect(target) as sock:
        sock.sendall(request(target.path, body))
        got = read_response(sock)
        assert got is not None and 400 <= got[0] < 500, got
        sock.sendall(request(target.path, target.good_body))  # the body was read: in step
        again = read_response(sock)
        assert again is not None and again[0] == 200


def test_an_error_before_the_body_is_read_never_desynchronises(target: Target) -> None:
    smuggled = request(target.health)
    for raw in (
        request("/no/such/route", smuggled),  # 404 answered without reading the body
        request(target.health, smuggled).replace(b"GET", b"GET", 1),
    ):
        with connect(target) as sock:
            sock.sendall(raw)
            got = read_response(sock)
            assert got is not None
            # either the body was discarded or the connection closed: never a second answer
            sock.settimeout(1.0)
            try:
                extra = sock.recv(65536)
            except TimeoutError:
                extra = b""
            assert not extra.startswith(b"HTTP/"), extra[:100]


def test_get_with_a_body_is_not_parsed_twice(target: Target) -> None:
    smuggled = request(target.health)
    raw = f"GET {target.health} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(smuggled)}\r\n\r\n"
    with connect(target) as sock:
        sock.sendall(raw.encode() + smuggled)
        assert (got := read_response(sock)) is not None and got[0] == 200
        assert closed_by_server(sock, within=5)


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"DELETE /x HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
    ],
    ids=["garbage", "version", "method", "long-line", "many-headers"],
)
def test_malformed_request_heads_get_a_4xx(target: Target, raw: bytes) -> None:
    status = exchange(target, raw)[0]
    assert 400 <= status < 500


def test_slow_and_idle_clients_are_cut_off_and_do_not_block_others() -> None:
    limits = ServerLimits(workers=2, idle_timeout_s=0.5, read_timeout_s=1.5, write_timeout_s=5)
    with policy_server(limits) as t:
        idle = connect(t)  # sends nothing
        t0 = time.monotonic()
        assert closed_by_server(idle, within=5)
        assert time.monotonic() - t0 < 3
        trickle = connect(t)
        raw = request(t.path, t.good_body)
        t0 = time.monotonic()
        closed = False
        for byte in raw:  # one byte every 0.1 s: never idle, never done
            try:
                trickle.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - t0 > 5:
                break
        assert closed or closed_by_server(trickle, within=1)
        assert time.monotonic() - t0 < 4  # the read deadline, not one deadline per byte
        # both workers pinned by idle connections: a request waits, then is served
        pinned = [connect(t), connect(t)]
        t0 = time.monotonic()
        status = exchange(t, request(t.path, t.good_body))[0]
        assert status == 200 and time.monotonic() - t0 < 5
        for s in (idle, trickle, *pinned):
            s.close()


def test_a_client_that_never_reads_is_cut_off() -> None:
    limits = ServerLimits(workers=2, write_timeout_s=1.0)
    with policy_server(limits) as t:
        sock = connect(t)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        body = json.dumps({"model": "toy", "prompt": "x", "max_tokens": 4, "n": 128}).encode()
        for _ in range(200):  # pipelined requests whose answers are never read
            try:
                sock.sendall(request(t.path, body))
            except OSError:
                break
        time.sleep(3)
        assert exchange(t, request(t.path, t.good_body))[0] == 200
        sock.close()


def test_the_same_bind_rule_for_both_servers() -> None:
    from thor.agents.backends.server import PolicyServer
    from thor.envs.sandbox.server import SandboxServer
    from thor.testing import ScriptedPolicy

    with pytest.raises(ConfigError, match="token"):
        check_bind("0.0.0.0", None, "x")
    check_bind("0.0.0.0", "t", "x")
    check_bind("::1", None, "x")
    with pytest.raises(ConfigError, match="token"):
        PolicyServer(ScriptedPolicy(lambda p: ""), host="0.0.0.0", port=0)
    with pytest.raises(ConfigError, match="token"):
        SandboxServer(host="10.0.0.1", port=0)


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=30,
    )
)
def test_parse_json_round_trips_or_refuses(value: object) -> None:
    data = json.dumps(value).encode()
    too_long = any(len(str(abs(v))) > MAX_INT_DIGITS for v in _ints(value))
    try:
        assert parse_json(data) == value and not too_long
    except RequestError as err:
        assert err.status == 400 and "digits" in err.message and too_long


def _ints(value: object) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [i for v in value for i in _ints(v)]
    if isinstance(value, dict):
        return [i for v in value.values() for i in _ints(v)]
    return []


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    length=st.one_of(
        st.integers(-(10**30), 10**30).map(str),
        st.text(max_size=12),
        st.just("0"),
    ),
    body=st.binary(max_size=64),
)
def test_any_length_header_and_body_gets_an_answer_and_the_server_lives(
    length: str, body: bytes
) -> None:
    t = _HYPOTHESIS_TARGET["t"]
    value = "".join(ch for ch in length if ch.isprintable() and ch not in "\r\n") or "x"
    raw = request(t.path, None, {"Content-Length": value}).replace(b"GET ", b"POST ", 1) + body
    with connect(t) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)  # a short body then ends: the server sees it end
        except OSError:
            pass
        got = read_response(sock)
    assert got is None or 200 <= got[0] < 500
    assert exchange(t, request(t.path, t.good_body))[0] == 200


_HYPOTHESIS_TARGET: dict[str, Target] = {}


@pytest.fixture(autouse=True, scope="module")
def _hypothesis_target() -> Iterator[None]:
    with policy_server() as t:
        _HYPOTHESIS_TARGET["t"] = t
        yield
    _HYPOTHESIS_TARGET.clear()


def test_many_concurrent_bad_requests_leave_the_server_serving() -> None:
    with policy_server(ServerLimits(workers=8)) as t:
        errors: list[BaseException] = []

        def hit(i: int) -> None:
            try:
                bad = BAD_BODIES[i % len(BAD_BODIES)]
                assert 400 <= exchange(t, request(t.path, bad))[0] < 500
            except BaseException as err:
                errors.append(err)

        threads = [threading.Thread(target=hit, args=(i,)) for i in range(64)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert not errors, errors[:3]
        assert exchange(t, request(t.path, t.good_body))[0] == 200


def test_a_sandbox_request_waits_for_a_slot_with_a_deadline() -> None:
    with sandbox_server(max_concurrency=1, slot_wait_s=0.5) as t:
        slow = json.dumps({"code": "import time\ntime.sleep(3)", "run_timeout": 10}).encode()
        first: list[int] = []
        holder = threading.Thread(
            target=lambda: first.append(exchange(t, request(t.path, slow))[0])
        )
        holder.start()
        time.sleep(1.0)  # the slow cell holds the only slot
        status, _, body = exchange(t, request(t.path, t.good_body))
        holder.join(30)
        assert status == 200 and first == [200]
        answer = json.loads(body)
        assert answer["status"] == "SandboxError" and "no free slot" in answer["message"]
