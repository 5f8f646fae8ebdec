"""Issue 15, sandbox part: memory bounds, deadlines on writes, socket families, kernel objects.

Every test drives a real isolated sandbox with a hostile cell, as the red team did: SysV shared
memory, memfds, tmpfs and many processes against one memory bound; a worker that stops reading;
sockets of every family; flock, inotify and ptys shared across sessions.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from sandbox_helpers import light, require_isolation

from thor.envs.sandbox import LocalSandbox, LocalSession
from thor.envs.sandbox import cgroup as cg
from thor.envs.sandbox import local as local_mod
from thor.envs.sandbox.server import SandboxServer
from thor.errors import IsolationError, SandboxError

pytestmark = pytest.mark.timeout(180)

MEMORY = 256  # MB: session_memory_mb of the bounded sandbox
LIMITS = {"timeout_s": 20, "memory_mb": MEMORY, "file_mb": 16, "scratch_mb": 64}
SECCOMP = os.uname().machine in ("x86_64", "aarch64")


@pytest.fixture(scope="module")
def bounded() -> Iterator[LocalSandbox]:
    require_isolation()
    sb = LocalSandbox(light(limits=LIMITS, pool_size=1))
    yield sb
    sb.close()


@pytest.fixture(scope="module")
def no_seccomp() -> Iterator[LocalSandbox]:
    """Seccomp off: what is left must still be bounded (IPC limits, the cgroup)."""
    require_isolation()
    sb = LocalSandbox(light(limits=LIMITS, seccomp=False))
    yield sb
    sb.close()


def need_cgroup(sb: LocalSandbox) -> None:
    if sb.cgroups is None:
        pytest.skip(f"no memory cgroup here: {sb.memory_bound}")


def cgroup_of(session: LocalSession) -> cg.FamilyCgroup:
    proc = session._proc
    assert proc is not None and proc.family.cgroup is not None
    return proc.family.cgroup


def peak_mb(group: cg.FamilyCgroup) -> float:
    peak = group.peak()
    assert peak is not None
    return peak / (1 << 20)


# -- 1. memory --------------------------------------------------------------------------------
SPREAD = """
import os
kids = []
for _ in range(4):  # 4 x 120 MB, each well under RLIMIT_AS, together far over the session's bound
    pid = os.fork()
    if pid == 0:
        x = b"x" * (120 << 20)
        os.write(1, b"held\\n")
        import time; time.sleep(3)
        os._exit(0)
    kids.append(pid)
print(sorted(os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids))
"""


def test_many_processes_share_one_memory_bound(bounded: LocalSandbox) -> None:
    need_cgroup(bounded)
    with bounded.open() as s:
        r = s.run(SPREAD)
        assert r.ok, r
        codes = json.loads(r.stdout.splitlines()[-1])
        assert -9 in codes, r.stdout  # the cgroup's OOM killer ended at least one of them
        assert peak_mb(cgroup_of(s)) <= MEMORY


def test_scratch_tmpfs_pages_count_towards_the_bound() -> None:
    require_isolation()
    limits = {**LIMITS, "session_memory_mb": 96}
    with LocalSandbox(light(limits=limits)) as sb, sb.open() as s:
        need_cgroup(sb)
        fill = (  # 2 x 60 MB in files of 15 MB (file_mb=16), each tmpfs under its 64 MB
            "pad = b'y' * (16 << 20)\n"  # the largest process: the OOM killer's choice, not keeper
            "for d in ('/tmp', '/dev/shm'):\n"
            "    for i in range(4):\n"
            "        open(f'{d}/fill{i}', 'wb').write(b'x' * (15 << 20))"
        )
        group, keeper = cgroup_of(s), s.fork()  # the branch keeps the family (and its cgroup)
        r = s.run(fill)
        assert r.status == "killed" and "memory limit of 96 MB" in r.reason, r
        assert peak_mb(group) <= 96
        keeper.close()
        assert s.run("print('fresh')").stdout == "fresh\n"


ERRNO_OF = """
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
def call(f, *args):
    ctypes.set_errno(0)
    return f(*args), ctypes.get_errno()
out = {
    "shmget": call(libc.shmget, 0, 1 << 20, 0o1600),
    "msgget": call(libc.msgget, 0, 0o1600),
    "semget": call(libc.semget, 0, 1, 0o1600),
    "memfd_create": call(libc.memfd_create, b"x", 0),
}
print(json.dumps(out))
"""


@pytest.mark.skipif(not SECCOMP, reason="the seccomp filter covers x86_64 and aarch64")
def test_sysv_ipc_and_memfds_are_refused(bounded: LocalSandbox) -> None:
    with bounded.open() as s:
        r = s.run(ERRNO_OF)
        assert r.ok, r
        got = json.loads(r.stdout)
        assert got == {name: [-1, 38] for name in got}, got  # ENOSYS
        assert s.run("print(open('/dev/null').read() == '')").stdout == "True\n"


def test_without_seccomp_sysv_shared_memory_is_capped(no_seccomp: LocalSandbox) -> None:
    code = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.shmat.restype = ctypes.c_void_p\n"
        "big = libc.shmget(0, 768 << 20, 0o1600)\n"  # IPC_PRIVATE, IPC_CREAT | 0600
        "err = ctypes.get_errno()\n"
        "total = 0\n"
        "for _ in range(64):\n"
        "    seg = libc.shmget(0, 8 << 20, 0o1600)\n"
        "    if seg < 0:\n"
        "        break\n"
        "    addr = libc.shmat(seg, None, 0)\n"
        "    ctypes.memset(addr, 1, 8 << 20)\n"
        "    total += 8\n"
        "print(big, err, total)\n"
    )
    with no_seccomp.open() as s:
        r = s.run(code)
        assert r.ok, r
        big, err, total = map(int, r.stdout.split())
        assert big == -1 and err == 22  # EINVAL: over the namespace's shmmax
        assert total <= LIMITS["scratch_mb"]  # shmall: the namespace's whole shared memory


def test_without_seccomp_memfds_are_capped_by_the_cgroup(no_seccomp: LocalSandbox) -> None:
    need_cgroup(no_seccomp)
    code = (
        "import os\n"
        "pad = b'y' * (32 << 20)\n"  # the largest process: the OOM killer's choice, not keeper
        "fds = []\n"
        "for _ in range(40):\n"  # 40 x 15 MB, each under RLIMIT_FSIZE
        "    fd = os.memfd_create('x')\n"
        "    os.write(fd, b'x' * (15 << 20))\n"
        "    fds.append(fd)\n"
        "print(len(fds))\n"
    )
    with no_seccomp.open() as s, s.fork() as keeper:
        group = cgroup_of(keeper)
        r = s.run(code)
        assert r.status == "killed" and f"memory limit of {MEMORY} MB" in r.reason, r
        assert peak_mb(group) <= MEMORY


def test_without_a_cgroup_the_sandbox_says_what_bounds_memory(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    require_isolation()

    def unavailable() -> cg.MemoryCgroups:
        raise cg.CgroupUnavailable("no memory controller (test)")

    monkeypatch.setattr(local_mod, "open_cgroups", unavailable)
    with caplog.at_level(logging.WARNING, logger="thor.sandbox"):
        sb = LocalSandbox(light(limits=LIMITS))
    with sb, sb.open() as s:
        assert sb.cgroups is None
        assert "no memory cgroup can be made here (no memory controller (test))" in caplog.text
        assert "RLIMIT_AS" in caplog.text and "memfds are refused" in caplog.text
        assert f"memory_mb={MEMORY}" in sb.memory_bound and "64 MB each" in sb.memory_bound
        assert s.run("print(1)").stdout == "1\n"
        if SECCOMP:  # what the cgroup would have capped is refused outright
            assert json.loads(s.run(ERRNO_OF).stdout)["memfd_create"] == [-1, 38]
    with pytest.raises(IsolationError, match="memory_cgroup=True"):
        LocalSandbox(light(memory_cgroup=True))


def test_memory_hierarchy_is_found_in_v1_and_v2_layouts(tmp_path: os.PathLike[str]) -> None:
    v1 = "30 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    found = cg.find_memory_cgroup(v1, "4:memory:/jobs/a\n0::/\n")
    assert found == (1, "/sys/fs/cgroup/memory/jobs/a")
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "svc"))
    with open(os.path.join(root, "svc", "cgroup.controllers"), "w") as f:
        f.write("cpu memory pids\n")
    v2 = f"40 25 0:30 / {root} rw - cgroup2 cgroup2 rw\n"
    assert cg.find_memory_cgroup(v2, "0::/svc\n") == (2, os.path.join(root, "svc"))
    with open(os.path.join(root, "svc", "cgroup.controllers"), "w") as f:
        f.write("cpu pids\n")
    assert isinstance(cg.find_memory_cgroup(v2, "0::/svc\n"), str)  # not delegated: a reason
    assert isinstance(cg.find_memory_cgroup("", "0::/\n"), str)


# -- 2. deadlines -----------------------------------------------------------------------------
STOP_LATER = (  # once this cell has answered, the worker stops instead of reading the next request
    "import os, signal, sys\n"
    "sys.modules['_thor_worker.wire'].recv = lambda *a, **k: os.kill(os.getpid(), signal.SIGSTOP)\n"
)


def test_a_worker_that_stops_reading_cannot_hang_the_host(bounded: LocalSandbox) -> None:
    with bounded.open() as s:
        assert s.run(STOP_LATER).ok  # stopped now: it reads nothing more
        big = "x = 1  # " + "y" * 900_000  # larger than the socket's buffer
        t0 = time.monotonic()
        r = s.run(big, timeout_s=1)
        assert time.monotonic() - t0 < 1 + bounded.limits.grace_s + 5, "the host blocked"
        assert r.status == "killed" and r.state_lost and "did not take the cell" in r.reason, r
        assert s.run("print('next')").stdout == "next\n"  # lock released, fresh interpreter


def test_a_stopped_worker_cannot_hang_fork() -> None:
    require_isolation()
    with LocalSandbox(light(open_timeout_s=2)) as sb, sb.open() as s:
        assert s.run(STOP_LATER).ok
        t0 = time.monotonic()
        with pytest.raises(SandboxError, match="fork failed"):
            s.fork()
        assert time.monotonic() - t0 < 10
        assert s.run("print(2)").stdout == "2\n"


def test_wedging_requests_do_not_use_up_the_servers_slots() -> None:
    require_isolation()
    cfg = light(pool_size=2, limits={"timeout_s": 2})
    with SandboxServer(cfg, port=0, max_concurrency=2) as srv:
        srv.start()
        wedge = {
            "code": STOP_LATER,
            "run_timeout": 2,
            "fetch_files": [f"{i:06d}-" + "n" * 200 for i in range(3000)],  # ~600 kB of request
        }
        answers: list[dict[str, object]] = []

        def post(body: dict[str, object]) -> None:
            req = urllib.request.Request(
                srv.url + "/run_code",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=60) as resp:
                answers.append(json.loads(resp.read()))

        threads = [threading.Thread(target=post, args=(wedge,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(answers) == 4
        post({"code": "print(6 * 7)", "run_timeout": 5})
        assert answers[-1]["run_result"]["stdout"] == "42\n"  # type: ignore[index]


# -- 3. socket families -----------------------------------------------------------------------
@pytest.mark.skipif(not SECCOMP, reason="the seccomp filter covers x86_64 and aarch64")
def test_only_unix_and_inet_sockets_can_be_made(bounded: LocalSandbox) -> None:
    code = (
        "import json, socket\n"
        "out = {}\n"
        "for fam in range(46):\n"
        "    try:\n"
        "        socket.socket(fam, socket.SOCK_DGRAM).close()\n"
        "        out[fam] = 0\n"
        "    except OSError as err:\n"
        "        out[fam] = err.errno\n"
        "a, b = socket.socketpair()\n"
        "print(json.dumps(out))\n"
    )
    with bounded.open() as s:
        r = s.run(code)
        assert r.ok, r
        got = {int(k): v for k, v in json.loads(r.stdout).items()}
        assert got[1] == got[2] == got[10] == 0  # AF_UNIX, AF_INET, AF_INET6
        refused = {fam: err for fam, err in got.items() if fam not in (1, 2, 10)}
        assert set(refused.values()) == {97}, refused  # EAFNOSUPPORT: AF_VSOCK (40) included


# -- 5. kernel objects namespaces do not separate ---------------------------------------------
@pytest.mark.skipif(not SECCOMP, reason="the seccomp filter covers x86_64 and aarch64")
def test_flock_on_shared_files_is_refused_and_cannot_block_the_host(
    bounded: LocalSandbox,
) -> None:
    shared = os.__file__  # the interpreter's own tree: shown read-only to every session
    with bounded.open() as s:
        code = (
            "import fcntl\n"
            f"held = open({shared!r})\n"
            "try:\n"
            "    fcntl.flock(held, fcntl.LOCK_EX)\n"
            "    print('locked')\n"
            "except OSError as err:\n"
            "    print(err.errno)\n"
        )
        assert s.run(code).stdout == "38\n"  # ENOSYS
        with open(shared) as mine:  # the host locks it at once: nothing inside holds it
            fcntl.flock(mine, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(mine, fcntl.LOCK_UN)


@pytest.mark.skipif(not SECCOMP, reason="the seccomp filter covers x86_64 and aarch64")
def test_inotify_and_fanotify_are_refused(bounded: LocalSandbox) -> None:
    code = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "out = []\n"
        "for call in (lambda: libc.inotify_init1(0), lambda: libc.fanotify_init(0, 0)):\n"
        "    ctypes.set_errno(0)\n"
        "    out.append((call(), ctypes.get_errno()))\n"
        "print(out)\n"
    )
    with bounded.open() as s:
        assert s.run(code).stdout == "[(-1, 38), (-1, 1)]\n"  # ENOSYS, EPERM


def test_each_session_has_ptys_of_its_own(bounded: LocalSandbox) -> None:
    with bounded.open() as a, bounded.open() as b:
        r = a.run(
            "import os\nptys = []\n"
            "try:\n"
            "    for _ in range(64):\n"
            "        ptys.append(os.openpty())\n"
            "except OSError as err:\n"
            "    print(len(ptys), err.errno)\n"
        )
        count, err = map(int, r.stdout.split())
        assert count == 16 and err == 28, r  # ENOSPC: the session's own devpts holds 16
        assert b.run("import os\nprint(os.listdir('/dev/pts'))").stdout == "['ptmx']\n"
        assert (
            b.run("import os\nm, s = os.openpty()\nprint(os.ttyname(s))").stdout == "/dev/pts/0\n"
        )
