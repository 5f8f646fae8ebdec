"""Hostile cells: each must come back with a clear result, within its timeout plus a margin.

Written to be harmless if containment failed: canaries have unique names and are removed, loops
are bounded, processes are cleaned up by pid, nothing calls kill(-1), and the only network peer is
the test's own loopback listener. The margins are hang detectors, not timing tests.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_helpers import light, procs_of, require_isolation

from thor.envs.sandbox import LocalSandbox, LocalSession
from thor.types import ExecResult

pytestmark = pytest.mark.timeout(180)

TIMEOUT = 2.0
MARGIN = 30.0  # generous: this only detects hangs
LIMITS = {
    "timeout_s": TIMEOUT,
    "memory_mb": 512,
    "processes": 32,
    "file_mb": 8,
    "output_bytes": 16384,
}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hostile() -> Iterator[LocalSandbox]:
    require_isolation()
    sb = LocalSandbox(light(limits=LIMITS, pool_size=1))
    yield sb
    sb.close()


@pytest.fixture
def session(hostile: LocalSandbox) -> Iterator[LocalSession]:
    s = hostile.open()
    yield s
    s.close()


def timed(session: LocalSession, code: str, timeout_s: float = TIMEOUT) -> ExecResult:
    t0 = time.monotonic()
    result = session.run(code, timeout_s=timeout_s)
    assert time.monotonic() - t0 < timeout_s + MARGIN, "the sandbox hung"
    return result


def wait_none_left(sb: LocalSandbox, uid: int | None = None) -> list[int]:
    deadline = time.monotonic() + 10
    while True:
        left = [p for p in procs_of(sb) if uid is None or _uid(p) == uid]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _uid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(next(line for line in f if line.startswith("Uid:")).split()[1])
    except (OSError, StopIteration):
        return -1


def test_infinite_loop(session: LocalSession) -> None:
    r = timed(session, "while True:\n    pass")
    assert r.status == "timeout"
    assert timed(session, "print('next')").stdout == "next\n"


def test_bounded_fork_loop_is_stopped_by_the_process_limit(
    hostile: LocalSandbox, session: LocalSession
) -> None:
    code = (
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    for _ in range(2000):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "        n += 1\n"
        "except OSError as err:\n"
        "    print('stopped', n, err.errno)\n"
    )
    r = timed(session, code)
    assert r.ok, r
    stopped, n, errno = r.stdout.split()
    assert stopped == "stopped" and int(n) < LIMITS["processes"] and int(errno) == 11  # EAGAIN
    uid = session.uid
    session.close()
    assert wait_none_left(hostile, uid) == []


def test_memory_up_to_twice_the_limit(session: LocalSession) -> None:
    code = (
        "chunks = []\n"
        "try:\n"
        "    for _ in range(2 * 512 // 32):\n"
        "        chunks.append(bytearray(32 << 20))\n"
        "except MemoryError:\n"
        "    print('MemoryError after', 32 * len(chunks), 'MB')\n"
        "del chunks\n"
    )
    r = timed(session, code, timeout_s=20)  # touching 512 MB takes a while on a busy machine
    assert r.ok and r.stdout.startswith("MemoryError after"), r
    assert int(r.stdout.split()[2]) < 512
    assert timed(session, "print('still fine')").ok


def test_writes_outside_the_scratch_never_reach_the_host(session: LocalSession) -> None:
    name = f"thor-canary-{uuid.uuid4().hex}"
    host_targets = [Path("/etc"), Path.home(), REPO, Path(tempfile.gettempdir()), Path("/usr")]
    code = (
        "import json, os\n"
        f"targets = {[str(p / name) for p in host_targets]!r} + [os.path.expanduser('~/{name}')]\n"
        "out = {}\n"
        "for t in targets:\n"
        "    try:\n"
        "        with open(t, 'w') as f:\n"
        "            f.write('x')\n"
        "        out[t] = 'written'\n"
        "    except OSError as err:\n"
        "        out[t] = err.strerror\n"
        "print(json.dumps(out))\n"
    )
    try:
        r = timed(session, code)
        assert r.ok, r
        got = json.loads(r.stdout)
        for p in (Path("/etc"), Path.home(), REPO, Path("/usr")):
            assert got[str(p / name)] != "written", got
        for p in host_targets:
            assert not (p / name).exists(), f"{p / name} reached the host"
    finally:
        for p in host_targets:
            (p / name).unlink(missing_ok=True)


def test_root_only_file_and_host_environment_stay_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    require_isolation()
    secret = uuid.uuid4().hex
    monkeypatch.setenv("THOR_TEST_SECRET", secret)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:  # not /tmp: each session has its own
        os.chmod(d, 0o755)
        canary = Path(d) / "canary"
        fd = os.open(canary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(fd, "w") as f:
            f.write(secret)
        with LocalSandbox(light(extra_ro_paths=[d])) as sb, sb.open() as s:
            assert timed(s, f"import os\nprint(os.path.exists({str(canary)!r}))").stdout == "True\n"
            r = timed(s, f"print(open({str(canary)!r}).read())")
            assert r.status == "error" and "PermissionError" in r.reason
            probe = (
                "import os\n"
                "seen = ' '.join(f'{k}={v}' for k, v in os.environ.items())\n"
                "for pid in os.listdir('/proc'):\n"
                "    try:\n"
                "        seen += open(f'/proc/{pid}/environ', 'rb').read().decode('latin-1')\n"
                "    except OSError:\n"
                "        pass\n"
                f"print({secret!r} in seen, 'THOR_TEST_SECRET' in seen)\n"
            )
            assert timed(s, probe).stdout == "False False\n"


def test_no_connection_to_a_loopback_listener(session: LocalSession) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(1.0)
        port = listener.getsockname()[1]
        r = timed(
            session, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)"
        )
        assert r.status == "error" and (
            "refused" in r.reason.lower() or "unreachable" in r.reason.lower()
        )
        with pytest.raises(TimeoutError):
            listener.accept()


def test_killing_the_parent(session: LocalSession) -> None:
    r = timed(session, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('done')")
    assert r.status in ("ok", "killed")
    assert timed(session, "print('after')").stdout == "after\n"


def test_exits_and_closed_stdout(session: LocalSession) -> None:
    assert timed(session, "import sys\nsys.exit()").status == "ok"
    r = timed(session, "import os\nos._exit(0)")
    assert r.status == "killed" and "exited with code 0" in r.reason and r.state_lost
    r = timed(session, "import os, sys\nprint('a')\nsys.stdout.close()\nos.close(1)\nos.close(2)")
    assert r.ok and r.stdout == "a\n"
    assert timed(session, "print('b')").stdout == "b\n"


def test_printing_a_gigabyte(session: LocalSession) -> None:
    r = timed(session, "line = 'x' * (1 << 20)\nfor _ in range(1024):\n    print(line)")
    assert r.truncated and "output limit" in r.reason
    assert len(r.stdout) <= LIMITS["output_bytes"] + 200
    assert timed(session, "print('small')").stdout == "small\n"


def test_binary_and_invalid_utf8_output(session: LocalSession) -> None:
    r = timed(
        session, "import os, sys\nos.write(1, bytes(range(256)))\nos.write(2, b'\\xff\\xfe\\xc3(')"
    )
    assert (
        r.ok
        and r.stdout.startswith("\x00\x01\x02")
        and "\ufffd" in r.stdout
        and "\ufffd" in r.stderr
    )
    assert ExecResult.model_validate_json(r.model_dump_json()) == r


def test_deep_recursion_that_segfaults(session: LocalSession) -> None:
    code = "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return list(map(f, [n + 1]))\nf(0)"
    r = timed(session, code)
    assert r.status == "killed" and "SIGSEGV" in r.reason and r.state_lost
    assert timed(session, "print('fresh')").state_lost


def test_threads_and_children_left_running(hostile: LocalSandbox, session: LocalSession) -> None:
    code = (
        "import subprocess, threading, time\n"
        "def spin():\n"
        "    for _ in range(600):\n"
        "        time.sleep(0.1)\n"
        "threading.Thread(target=spin, daemon=True).start()\n"
        "child = subprocess.Popen(['sleep', '120'])\n"
        "orphan = subprocess.Popen(['sleep', '120'], start_new_session=True)\n"
        "print(threading.active_count())\n"
    )
    r = timed(session, code)
    assert r.ok and r.stdout == "2\n"
    assert timed(session, "print(child.poll(), orphan.poll())").stdout == "None None\n"
    uid = session.uid
    session.close()
    assert wait_none_left(hostile, uid) == []


def test_leaking_every_file_descriptor(session: LocalSession) -> None:
    leak = "import os\nleak = []\ntry:\n    while True:\n        leak.append(os.open('/dev/null', 0))\nexcept OSError as err:\n    print(err.errno)"
    r = timed(session, leak)
    assert r.ok and r.stdout == "24\n"  # EMFILE: the open-file limit
    assert timed(session, "print('still works')").ok  # the worker's own descriptors came back
    grab = (
        "for fd in leak[:20]:\n"
        "    os.close(fd)\n"
        "del leak[:20]\n"
        "import threading, time\n"
        "def grab():\n"
        "    for _ in range(100000):\n"
        "        try:\n"
        "            leak.append(os.open('/dev/null', 0))\n"
        "        except OSError:\n"
        "            time.sleep(0.0005)\n"
        "threading.Thread(target=grab, daemon=True).start()\n"
    )
    assert timed(session, grab).ok
    time.sleep(0.3)  # the thread takes every descriptor the worker gives back after the cell
    blocked = timed(session, "print('no room')")
    assert blocked.status == "error" and "no file for its output" in blocked.reason


def test_syntax_errors(session: LocalSession) -> None:
    for code in ("def f(:\n    pass", "x = (1,", "\x00", "if True:\nprint(1)"):
        r = timed(session, code)
        assert r.status == "error" and r.reason.split(":")[0] in (
            "SyntaxError",
            "IndentationError",
            "ValueError",
        )


def test_ten_megabytes_of_code(session: LocalSession) -> None:
    r = timed(session, "x = 1\n" * (10 * (1 << 20) // 6))
    assert r.status == "error" and r.reason.startswith("code too large")
    assert timed(session, "print('ok')").ok


def test_forged_protocol_bytes_kill_only_the_session(session: LocalSession) -> None:
    code = (
        "import os, socket, stat\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        if stat.S_ISSOCK(os.fstat(fd).st_mode):\n"
        "            os.write(fd, b'\\xff\\xff\\xff\\xffgarbage')\n"
        "    except OSError:\n"
        "        pass\n"
    )
    r = timed(session, code)
    assert r.status == "killed" and "protocol" in r.reason and r.state_lost
    assert timed(session, "print('recovered')").stdout == "recovered\n"


def test_a_forked_child_that_does_not_exit_cannot_hijack_the_session(session: LocalSession) -> None:
    r = timed(session, "import os\nchild = os.fork()\nprint('parent' if child else 'child')")
    assert r.ok and "parent" in r.stdout
    for i in range(5):  # the child finished the cell too, but exited instead of answering
        assert timed(session, f"print({i})").stdout == f"{i}\n"
    assert timed(session, "import os\nprint(os.waitpid(child, 0)[1])").stdout == "0\n"


def test_namespaces_and_risky_kernel_interfaces_are_refused(session: LocalSession) -> None:
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "out = []\n"
        "for name, call in [('unshare', lambda: libc.unshare(0x10000000)), ('setns', lambda: libc.setns(0, 0)),\n"
        "                   ('io_uring', lambda: libc.syscall(425, 1, 0)), ('bpf', lambda: libc.syscall(321, 0, 0, 0)),\n"
        "                   ('ptrace', lambda: libc.ptrace(16, os.getppid(), 0, 0))]:\n"
        "    ctypes.set_errno(0)\n"
        "    out.append(f'{name}={call()}/{ctypes.get_errno()}')\n"
        "print(' '.join(out))\n"
        "print(os.system('unshare -U -r true 2>/dev/null'))\n"
    )
    if os.uname().machine not in ("x86_64", "aarch64"):
        pytest.skip("the seccomp filter covers x86_64 and aarch64")
    r = timed(session, code)
    assert r.ok, r
    first, second = r.stdout.splitlines()
    assert first == "unshare=-1/1 setns=-1/1 io_uring=-1/1 bpf=-1/1 ptrace=-1/1", first
    assert second != "0"


def test_afterwards_the_sandbox_serves_and_nothing_is_left(hostile: LocalSandbox) -> None:
    with hostile.open() as s:
        assert timed(s, "print(6 * 7)").stdout == "42\n"
    hostile.close()
    assert wait_none_left(hostile) == []
