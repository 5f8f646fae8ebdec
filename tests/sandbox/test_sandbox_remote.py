"""RemoteSandbox and ``thor sandbox serve``: thor's client and the official sandbox-fusion client
against a real server on loopback."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from sandbox_helpers import light, require_isolation

from thor.envs.sandbox import RemoteSandbox, Sandbox, Session
from thor.envs.sandbox.remote import replay_program, result_from_response
from thor.envs.sandbox.server import SandboxServer, is_loopback, response_from_result
from thor.errors import ConfigError, SandboxError
from thor.registries import SANDBOXES
from thor.types import ExecResult

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    require_isolation()
    with SandboxServer(light(pool_size=2, limits={"timeout_s": 5}), port=0) as srv:
        srv.start()
        yield srv


@pytest.fixture(scope="module")
def token_server() -> Iterator[SandboxServer]:
    require_isolation()
    with SandboxServer(light(), port=0, token="s3cret") as srv:
        srv.start()
        yield srv


def test_thor_client_keeps_state_by_replay(server: SandboxServer) -> None:
    sandbox = SANDBOXES.make("remote", url=server.url, timeout_s=5)
    assert isinstance(sandbox, Sandbox)
    with sandbox.open() as s:
        assert isinstance(s, Session)
        assert s.run("x = 20\nprint('set')").stdout == "set\n"  # replayed silently afterwards
        assert s.run("x += 1").ok
        r = s.run("print(x * 2)")
        assert (r.status, r.stdout) == ("ok", "42\n")
        b = s.fork()
        assert b.run("x = 0").ok and b.run("print(x)").stdout == "0\n"
        assert s.run("print(x)").stdout == "21\n"
        err = s.run("1 / 0")
        assert err.status == "error" and err.reason == "ZeroDivisionError: division by zero"
        assert '"<cell>", line 1' in err.stderr and "_thor" not in err.stderr
        assert s.run("print(x)").stdout == "21\n"  # failed cells are not replayed
        exit3 = s.run("import sys\nsys.exit(3)")
        assert exit3.status == "error" and exit3.reason == "SystemExit: 3"
        timeout = s.run("while True: pass", timeout_s=0.5)
        assert timeout.status == "timeout"
        killed = s.run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        assert killed.status == "killed" and "SIGKILL" in killed.reason


def test_replay_failure_clears_the_history(server: SandboxServer) -> None:
    with RemoteSandbox({"url": server.url}).open() as s:
        s.run(
            "import os\nif os.path.exists('flag'):\n    raise RuntimeError('differs on replay')\nopen('flag', 'w')"
        )
        assert s.history  # in a fresh interpreter each time, the flag never exists: it replays fine
        s.history.append("raise ValueError('not reproducible')")
        r = s.run("print(1)")
        assert r.status == "error" and r.state_lost and "replaying" in r.reason
        assert s.history == []


def test_official_sandbox_fusion_client(server: SandboxServer) -> None:
    from sandbox_fusion import RunCodeRequest, RunStatus, run_code

    ok = run_code(RunCodeRequest(code="print(6 * 7)", language="python"), endpoint=server.url)
    assert ok.status == RunStatus.Success and ok.run_result is not None
    assert ok.run_result.stdout == "42\n" and ok.run_result.return_code == 0
    bad = run_code(
        RunCodeRequest(code="raise KeyError('k')", language="python"), endpoint=server.url
    )
    assert bad.status == RunStatus.Failed and bad.run_result is not None
    assert bad.run_result.return_code == 1 and "KeyError" in (bad.run_result.stderr or "")
    slow = run_code(
        RunCodeRequest(code="while True: pass", language="python", run_timeout=0.5),
        endpoint=server.url,
    )
    assert slow.run_result is not None and slow.run_result.status == "TimeLimitExceeded"
    files = {"data/in.txt": base64.b64encode(b"hello").decode()}
    req = RunCodeRequest(
        code="print(open('data/in.txt').read())\nopen('out.bin', 'wb').write(b'\\x00\\x01')",
        language="python",
        files=files,
        fetch_files=["out.bin", "missing.txt"],
    )
    got = run_code(req, endpoint=server.url)
    assert got.run_result is not None and got.run_result.stdout == "hello\n"
    assert got.files == {"out.bin": base64.b64encode(b"\x00\x01").decode()}
    inp = run_code(
        RunCodeRequest(code="print(input().upper())", language="python", stdin="abc\n"),
        endpoint=server.url,
    )
    assert inp.run_result is not None and inp.run_result.stdout == "ABC\n"


def test_token_is_required_when_set(token_server: SandboxServer) -> None:
    with pytest.raises(SandboxError, match="401"):
        RemoteSandbox({"url": token_server.url, "retries": 0}).open().run("print(1)")
    with pytest.raises(SandboxError, match="401"):
        RemoteSandbox({"url": token_server.url, "token": "wrong", "retries": 0}).open().run(
            "print(1)"
        )
    r = RemoteSandbox({"url": token_server.url, "token": "s3cret"}).open().run("print(1)")
    assert r.stdout == "1\n"


def test_non_loopback_address_needs_a_token() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert (
        not is_loopback("0.0.0.0")
        and not is_loopback("10.1.2.3")
        and not is_loopback("example.com")
    )
    with pytest.raises(ConfigError, match="token"):
        SandboxServer(light(), host="0.0.0.0", port=0)


def test_network_errors_retry_then_raise() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sandbox = RemoteSandbox({"url": f"http://127.0.0.1:{port}", "retries": 2, "backoff_s": 0.01})
    t0 = time.monotonic()
    with pytest.raises(SandboxError, match="after 3 attempts"):
        sandbox.open().run("print(1)")
    assert time.monotonic() - t0 < 10


def test_http_edge_cases(server: SandboxServer) -> None:
    with urllib.request.urlopen(server.url + "/v1/ping", timeout=10) as r:
        assert json.loads(r.read()) == "pong"

    def post(path: str, body: bytes) -> int:
        req = urllib.request.Request(server.url + path, data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return int(r.status)
        except urllib.error.HTTPError as err:
            return int(err.code)

    assert post("/nope", b"{}") == 404
    assert post("/run_code", b"{not json") == 400
    assert post("/run_code", b"[1, 2]") == 400
    conn = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=10)
    conn.putrequest("POST", "/run_code")  # announces a body far over the limit, sends none
    conn.putheader("Content-Length", str(1 << 40))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    other = json.dumps({"code": "print(1)", "language": "cpp"}).encode()
    req = urllib.request.Request(server.url + "/run_code", data=other, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.loads(r.read())["status"] == "SandboxError"


def test_result_mappings_round_trip() -> None:
    cases = [
        ExecResult(status="ok", stdout="1\n"),
        ExecResult(status="error", stderr="Traceback...\nValueError: v\n", reason="ValueError: v"),
        ExecResult(status="error", reason="SystemExit: 4"),
        ExecResult(status="timeout", reason="wall-clock limit of 1 s exceeded"),
        ExecResult(
            status="killed", reason="killed by SIGSEGV (segmentation fault)", state_lost=True
        ),
        ExecResult(
            status="killed", reason="the interpreter exited with code 3 (os._exit or a crash)"
        ),
    ]
    codes = [0, 1, 4, None, -11, 3]
    for result, code in zip(cases, codes, strict=True):
        resp = response_from_result(result)
        assert resp["run_result"]["return_code"] == code
        back = result_from_response(resp)
        assert back.status == (
            "error" if result.status == "killed" and code == 3 else result.status
        )
    with pytest.raises(SandboxError):
        result_from_response({"status": "SandboxError", "message": "down"})
    with pytest.raises(SandboxError):
        result_from_response(
            {"status": "Success", "run_result": {"status": "Finished", "stdout": 5}}
        )


def test_replay_program_is_valid_python() -> None:
    program = replay_program(["a = 1", "b = '''x'''"], "print(a, b)\n# \"\"\" ''' \\\\")
    compile(program, "<p>", "exec")
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.stdout == "1 x\n" and out.returncode == 0


@pytest.mark.slow
def test_thor_sandbox_serve_command() -> None:
    require_isolation()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "thor", "sandbox", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/v1/ping", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
                time.sleep(0.2)
        r = RemoteSandbox({"url": url}).open().run("import sympy\nprint(sympy.factor('x**2 - 1'))")
        assert r.stdout == "(x - 1)*(x + 1)\n"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_remote_text_is_made_encodable() -> None:
    """A server may send lone surrogates (valid JSON escapes); results must still write out."""
    run = {"status": "Finished", "return_code": 0, "stdout": "a\udc80", "stderr": "\ud800"}
    r = result_from_response({"status": "Success", "run_result": run})
    assert r.stdout == "a\\udc80" and r.stderr == "\\ud800"
    json.dumps(r.model_dump(), ensure_ascii=False).encode("utf-8")
    with pytest.raises(SandboxError, match="malformed"):
        result_from_response({"status": "Success", "run_result": {**run, "execution_time": 1e999}})
