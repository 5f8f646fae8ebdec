"""The template ("zygote"): pre-imports the heavy modules once and forks one session per request.

The template never runs model code. In isolated mode it is root inside its own bubblewrap
namespaces (mount, pid, net, ipc, uts), and each session it forks makes itself private mount,
network (no interface, or only a loopback of its own) and System V IPC namespaces (with small IPC
limits), a size-limited scratch tmpfs on ``/tmp`` and ``/dev/shm``, a private pty instance and a
small tmpfs for captured output, sets its resource limits, drops every capability and becomes a
uid that no other session uses, before any model code exists. A session
is two processes: a tiny guardian that waits for the interpreter and reports how it died, and the
interpreter itself (:mod:`.cells`). (Its branches need no guardian where the host can read exit
statuses from pidfds: see :meth:`.cells.Interpreter.fork`.)

Control protocol (host -> template, one frame per request, the session's socket end attached):
``{"op": "open", "uid": int | null, "scratch": str, "limits": {...}, "seccomp": bool,
"loopback": bool}``. The template answers nothing; the new session says hello on its own socket,
or the socket closes. The launch config (``argv[0]``) names the template's ``/tmp`` entries that
hold bound host paths (``carry``): every session shows them in its own ``/tmp`` too.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import platform
import resource
import signal
import socket
import traceback
from typing import Any

from . import cells, rng, seccomp, wire
from .guardian import guard


def main(argv: list[str]) -> None:
    """Entry point: ``argv[0]`` is the JSON config written by the host."""
    cfg = json.loads(argv[0])
    ctl = socket.socket(fileno=int(cfg["ctl_fd"]))
    isolated = bool(cfg["isolated"])
    for name in cfg.get("preimport", []):
        importlib.import_module(name)
    if cfg.get("warmup"):  # trusted code from the host's config, never model code
        exec(compile(cfg["warmup"], "<warmup>", "exec"), {"__name__": "__warmup__"})
    rng.TEMPLATE[:] = rng.find()  # reseeded in every session
    carry = [str(name) for name in cfg.get("carry", [])]
    if isolated:
        # Every session then sees only its own processes (root, the template, sees all).
        flags = wire.MS_REMOUNT | wire.MS_NOSUID | wire.MS_NODEV | wire.MS_NOEXEC
        wire.mount("proc", "/proc", "proc", flags, "hidepid=2")
    wire.prctl(wire.PR_SET_CHILD_SUBREAPER, 1)
    if isolated:
        seccomp.prepare()
        wire.cap_last()
    signal.signal(signal.SIGCHLD, _reap)
    gc.collect()
    gc.freeze()  # keep the template's objects out of the children's collections (fewer COW copies)
    wire.send(ctl, {"type": "template", "pid": os.getpid()}, creds=True)
    while True:
        got = wire.recv(ctl, max_fds=1)
        if got is None:  # the host closed the sandbox, or died
            if isolated:  # every process of this pid namespace (the sandbox's only), then us
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.kill(-1, signal.SIGKILL)
            return
        req, fds = got
        if req.get("op") != "open" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            _session(ctl, fds[0], req, isolated, carry)  # never returns
        os.close(fds[0])


def _reap(_signum: int, _frame: Any) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _session(
    ctl: socket.socket, fd: int, req: dict[str, Any], isolated: bool, carry: list[str]
) -> None:
    """In the forked child: set the session up, then split into guardian and interpreter."""
    sock = None
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        ctl.close()
        sock = socket.socket(fileno=fd)
        limits = req["limits"]
        _setup(req, isolated, carry)
        pid = os.fork()
        if pid:
            guard(pid, sock, float(limits["session_cpu_s"]))
        cells.serve(sock, limits, wire.CAPTURE_DIR if isolated else None)
        os._exit(0)
    except Exception as err:  # report why the session could not start, then die
        if sock is not None:
            try:
                where = traceback.extract_tb(err.__traceback__)[-1]
                msg = f"session setup failed: {err!r} (at {where.name}:{where.lineno})"
                wire.send(sock, {"type": "error", "message": msg})
            except OSError:
                pass
    os._exit(70)


def _setup(req: dict[str, Any], isolated: bool, carry: list[str]) -> None:
    """Mounts, limits and identity of a fresh session (runs as root in isolated mode)."""
    limits = req["limits"]
    null = os.open("/dev/null", os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)
    os.close(null)
    if isolated:
        uid = int(req["uid"])
        # private mounts, network (no interface up, or a loopback of its own) and System V IPC
        wire.unshare(wire.CLONE_NEWNS | wire.CLONE_NEWNET | wire.CLONE_NEWIPC)
        if req.get("loopback"):
            wire.loopback_up()
        wire.mount(None, "/", None, wire.MS_REC | wire.MS_PRIVATE, None)
        _ipc_limits(limits)
        _mounts(uid, limits, carry)
        scratch = "/tmp"
    else:
        scratch = str(req["scratch"])
    os.setsid()
    _set_limits(limits, isolated)
    if isolated:
        wire.drop_bounding_set()
        wire.clear_inheritable()
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise OSError("could not become the session's user")
    else:
        wire.prctl(wire.PR_SET_PDEATHSIG, signal.SIGKILL)
    wire.prctl(wire.PR_SET_NO_NEW_PRIVS, 1)
    if isolated and req.get("seccomp") and not seccomp.install():
        raise OSError(
            f"seccomp filters are not supported on {platform.machine()}: set seccomp=False"
        )
    if isolated:  # as the session's user: root holds no capability to enter its 0700 tmpfs
        os.mkdir("/tmp/session", 0o700)
        scratch = "/tmp/session"
    os.chdir(scratch)
    os.environ["HOME"] = os.environ["PWD"] = scratch
    if not isolated:  # the host's /tmp is shared: keep temporary files in the session's directory
        os.environ["TMPDIR"] = scratch


def _ipc_limits(limits: dict[str, Any]) -> None:
    """Small System V IPC limits in the session's new IPC namespace (its defaults are huge).

    Sessions are refused System V IPC by seccomp; these bound it where seccomp is off.
    """
    shm = int(limits["scratch_mb"]) << 20
    values = {
        "shmmax": shm, "shmall": shm // os.sysconf("SC_PAGE_SIZE"), "shmmni": 16,
        "msgmni": 16, "msgmnb": 65536, "msgmax": 8192, "sem": "32 512 32 16",
    }  # fmt: skip
    for name, value in values.items():
        with open(f"/proc/sys/kernel/{name}", "w") as f:
            f.write(f"{value}\n")


def _mounts(uid: int, limits: dict[str, Any], carry: list[str]) -> None:
    """The session's own tmpfs on /tmp and /dev/shm, ptys and output tmpfs; /tmp's bound paths."""
    held = []
    for name in carry:  # the template's /tmp entries (bound host paths), before /tmp is replaced
        path = f"/tmp/{name}"
        link = os.readlink(path) if os.path.islink(path) else None
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        held.append((path, fd, link, os.path.isdir(path)))
    size = int(limits["scratch_mb"])
    opts = f"size={size}m,nr_inodes=65536,mode=0700,uid={uid},gid={uid}"
    plain = wire.MS_NOSUID | wire.MS_NODEV
    wire.mount("tmpfs", "/tmp", "tmpfs", plain, opts)
    if os.path.isdir("/dev/shm"):  # shared memory (multiprocessing) is private too
        wire.mount("tmpfs", "/dev/shm", "tmpfs", plain, opts)
    if os.path.isdir("/dev/pts"):  # ptys of its own: none listed or counted across sessions
        pts = "newinstance,ptmxmode=0666,mode=0620,max=16"
        wire.mount("devpts", "/dev/pts", "devpts", wire.MS_NOSUID | wire.MS_NOEXEC, pts)
    out = 2 * int(limits["file_mb"]) + 1  # two captured streams of at most file_mb each
    opts = f"size={out}m,nr_inodes=64,mode=0700,uid={uid},gid={uid}"
    wire.mount("tmpfs", wire.CAPTURE_DIR, "tmpfs", plain | wire.MS_NOEXEC, opts)
    for path, fd, link, is_dir in held:
        if link is not None:
            os.symlink(link, path)
        else:
            if is_dir:
                os.mkdir(path, 0o755)
            else:
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
            wire.mount(f"/proc/self/fd/{fd}", path, None, wire.MS_BIND | wire.MS_REC, None)
        os.close(fd)


def _set_limits(limits: dict[str, Any], isolated: bool) -> None:
    mb = 1 << 20
    cpu = max(1, int(limits["session_cpu_s"]))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_AS, (int(limits["memory_mb"]) * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(limits["open_files"]),) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limits["file_mb"]) * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if isolated:  # counted per real uid: only meaningful with a uid of the session's own
        resource.setrlimit(resource.RLIMIT_NPROC, (int(limits["processes"]),) * 2)
