"""Issue 15, sandbox part: untrusted worker frames and hellos, random generators, paths under /tmp.

Forged frames are written by the cell itself on its own protocol socket, as an attacker would.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_helpers import light, require_isolation

from thor.envs.sandbox import LocalSandbox
from thor.envs.sandbox._worker import wire
from thor.envs.sandbox.channel import Channel
from thor.envs.sandbox.template import Family, Proc
from thor.errors import SandboxError

pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plain() -> Iterator[LocalSandbox]:
    require_isolation()
    sb = LocalSandbox(light(pool_size=1, limits={"timeout_s": 10}))
    yield sb
    sb.close()


def forge(frame: dict[str, object]) -> str:
    """A cell that writes ``frame`` on its own protocol socket (every socket fd it holds)."""
    return (
        "import json, os, stat\n"
        f"body = {json.dumps(frame).encode()!r}\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        if stat.S_ISSOCK(os.fstat(fd).st_mode):\n"
        "            os.write(fd, len(body).to_bytes(4, 'big') + body)\n"
        "    except OSError:\n"
        "        pass\n"
    )


def encodable(r: object) -> None:
    text = json.dumps(r.model_dump(), ensure_ascii=False)  # type: ignore[attr-defined]
    text.encode("utf-8")  # what `thor eval` does when it writes results out


# -- 4. what the worker sends is untrusted ----------------------------------------------------
def test_a_forged_result_with_a_lone_surrogate_kills_only_that_session(
    plain: LocalSandbox,
) -> None:
    frame = {"type": "result", "status": "ok", "stdout": "\udcff", "stderr": "", "reason": ""}
    with plain.open() as s:
        r = s.run(forge(frame))
        assert r.status == "killed" and "cannot be encoded" in r.reason and r.state_lost, r
        encodable(r)
        assert s.run("print('recovered')").stdout == "recovered\n"


def test_forged_numbers_are_bounded_by_what_the_host_measured(plain: LocalSandbox) -> None:
    frame = {"type": "result", "status": "ok", "stdout": "x", "duration_s": 1e300}
    with plain.open() as s:
        t0 = time.monotonic()
        r = s.run(forge(frame))
        assert r.ok and r.duration_s <= time.monotonic() - t0, r
    died = {"type": "died", "signal": 10**30, "code": "x", "cpu_s": float("nan")}
    with plain.open() as s:
        r = s.run(forge(died))
        assert r.status == "killed" and r.reason == "the interpreter died", r


def test_text_the_cell_raises_is_made_encodable(plain: LocalSandbox) -> None:
    with plain.open() as s:
        r = s.run("raise ValueError('bad \\udc80 byte')")
        assert r.status == "error" and r.reason == "ValueError: bad \\udc80 byte", r
        encodable(r)
        r = s.run("import sys\nsys.exit('bye \\ud800')")
        assert r.status == "error" and "\\ud800" in r.reason, r
        encodable(r)
        assert s.run("print(1)").stdout == "1\n"  # the session lives on


def test_a_hello_from_a_process_outside_the_family_is_refused(plain: LocalSandbox) -> None:
    """Root (as the red team was) can forge SCM_CREDENTIALS: pid and uid of anyone. The host must
    still hold only a process that really runs as the family's uid in the sandbox."""
    victim = subprocess.Popen(["sleep", "60"])
    template = plain._live_template()
    family = Family(plain._uids, template)
    channel, theirs = Channel.pair(1 << 16)
    try:
        body = wire.encode({"type": "hello", "pid": 1, "uid": family.uid, "cwd": "/"})
        assert family.uid is not None
        ucred = b"".join(n.to_bytes(4, "little") for n in (victim.pid, family.uid, family.uid))
        creds = (socket.SOL_SOCKET, socket.SCM_CREDENTIALS, ucred)  # the victim's pid
        theirs.sendmsg([body], [creds])
        proc = None
        try:
            proc = Proc.await_hello(channel, family, time.monotonic() + 5)
        except SandboxError as err:
            assert "not a process of this session" in str(err)
        if proc is not None:  # the old host took it: killing "the session" kills the victim
            proc.kill()
        time.sleep(0.2)
        assert victim.poll() is None, "the host killed a process that was not the session's"
        assert proc is None
    finally:
        victim.kill()
        victim.wait()
        theirs.close()
        channel.close()


FAKE_BRANCH = """
import os, socket, sys
cells, wire = sys.modules["_thor_worker.cells"], sys.modules["_thor_worker.wire"]
def fork(self, msg, fd):
    pid = os.fork()
    if pid == 0:  # says the branch's hello, then goes away: its pid is free for anyone
        wire.send(socket.socket(fileno=fd), {"type": "hello", "pid": 2}, creds=True)
        os._exit(0)
    os.close(fd)
    os.waitpid(pid, 0)
    return False
cells.Interpreter.fork = fork
"""


def test_a_branch_hello_whose_pid_was_reused_holds_nothing(
    plain: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer of a branch's hello exits and its pid goes to a host process before the host
    takes hold: the host must not adopt (and later kill) that process."""
    victims: list[subprocess.Popen[bytes]] = []
    original = Channel.recv

    def recv(self: Channel, deadline: float, *, want_peer: bool = False):  # type: ignore[no-untyped-def]
        msg, peer = original(self, deadline, want_peer=want_peer)
        if want_peer and msg.get("type") == "hello" and peer is not None and msg.get("pid") == 2:
            while os.path.exists(f"/proc/{peer.pid}") and time.monotonic() < deadline:
                time.sleep(0.01)
            victim = _take_pid(peer.pid)
            if victim is None:
                pytest.skip("could not make a host process reuse the pid (a busy machine)")
            victims.append(victim)
        return msg, peer

    monkeypatch.setattr(Channel, "recv", recv)
    with plain.open() as s:
        assert s.run(FAKE_BRANCH).ok
        try:
            branch = s.fork()
            branch.close()  # the old host held the victim: this killed it
        except SandboxError as err:
            assert "did not start" in str(err)
    try:
        assert victims and victims[0].poll() is None, "a host process was killed"
    finally:
        for v in victims:
            v.kill()
            v.wait()


def _take_pid(pid: int) -> subprocess.Popen[bytes] | None:
    """A host process with the given pid (through ns_last_pid), or None if others took it."""
    for _ in range(50):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))
        proc = subprocess.Popen(["sleep", "60"])
        if proc.pid == pid:
            return proc
        proc.kill()
        proc.wait()
    return None


# -- 6. random generators ---------------------------------------------------------------------
DRAW = (
    "import random, numpy, sympy.core.random as sr\n"
    "print(random.random(), numpy.random.random(), sr.random(), sr.randint(0, 10**9))"
)


def test_sessions_get_independent_seeds_for_every_generator(sandbox: LocalSandbox) -> None:
    with sandbox.open() as a, sandbox.open() as b:
        da, db = a.run(DRAW).stdout.split(), b.run(DRAW).stdout.split()
        assert len(da) == 4 and all(x != y for x, y in zip(da, db, strict=True)), (da, db)


def test_fork_continues_every_random_stream_exactly(sandbox: LocalSandbox) -> None:
    with sandbox.open() as s:
        s.run(
            "import random, numpy, sympy.core.random as sr\nrandom.seed(1)\nnumpy.random.seed(2)\nsr.seed(3)"
        )
        s.run(DRAW)  # some draws before the fork
        with s.fork() as b:
            assert b.run(DRAW).stdout == s.run(DRAW).stdout
            assert b.run(DRAW).stdout == s.run(DRAW).stdout


def test_fork_can_reseed_the_branch(sandbox: LocalSandbox) -> None:
    with sandbox.open() as s:
        s.run(
            "import random, numpy, sympy.core.random as sr\nrandom.seed(1)\nnumpy.random.seed(2)\nsr.seed(3)"
        )
        with s.fork(reseed=True) as b, s.fork(reseed=True) as c:
            mine, theirs, third = (x.run(DRAW).stdout.split() for x in (s, b, c))
            assert all(x != y for x, y in zip(mine, theirs, strict=True))
            assert all(x != y for x, y in zip(theirs, third, strict=True))


# -- 7. the checkout, the venv and python under /tmp ------------------------------------------
HOST = """
from thor.envs.sandbox import LocalSandbox
cfg = {"preimport": ["thorprobe"], "warmup": "", "pool_size": 0}
with LocalSandbox(cfg) as sb, sb.open() as s:
    code = "import thorprobe.lazy, colorsys, sys\\nprint(thorprobe.lazy.X, sys.prefix, sys.base_prefix)"
    r = s.run(code)
    print(r.model_dump_json())
"""


def test_a_sandbox_run_from_a_checkout_venv_and_python_under_tmp() -> None:
    """Everything under /tmp: python (a symlink to the interpreter's tree), a venv made from it,
    a package in the venv that the template imports and whose submodule a cell imports lazily,
    and the checkout the host runs thor from."""
    require_isolation()
    root = Path(tempfile.mkdtemp(prefix="thor-clone-", dir="/tmp"))
    try:
        python = root / "python"
        python.symlink_to(os.path.realpath(sys.base_prefix))
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        venv = root / "venv"
        subprocess.run(
            [str(python / "bin" / version), "-m", "venv", "--without-pip", str(venv)],
            check=True,
            timeout=60,
        )
        site = venv / "lib" / version / "site-packages"
        (site / "thorprobe").mkdir()
        (site / "thorprobe" / "__init__.py").write_text("")
        (site / "thorprobe" / "lazy.py").write_text("X = 42\n")
        deps = [p for p in sys.path if p.endswith("site-packages")]
        (site / "host-deps.pth").write_text("\n".join(deps) + "\n")  # pydantic & co. for the host
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(REPO / "thor", root / "checkout" / "thor", ignore=ignore)
        env = {**os.environ, "PYTHONPATH": str(root / "checkout")}
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-c", textwrap.dedent(HOST)],
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.splitlines()[-1])
        assert result["status"] == "ok", result
        assert result["stdout"] == f"42 {venv} {python}\n"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_extra_paths_under_tmp_are_shown_to_every_session() -> None:
    require_isolation()
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        os.chmod(d, 0o755)
        Path(d, "data.txt").write_text("shared\n")
        with LocalSandbox(light(extra_ro_paths=[d])) as sb, sb.open() as s:
            assert s.run(f"print(open({d + '/data.txt'!r}).read(), end='')").stdout == "shared\n"
            r = s.run(f"open({d + '/new.txt'!r}, 'w')")
            assert r.status == "error" and r.reason.startswith(("PermissionError", "OSError"))
