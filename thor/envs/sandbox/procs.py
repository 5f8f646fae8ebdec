"""Host-side process control: session uids, and killing every process of a session.

Each isolated session family (a session and its forks) runs as a uid that nothing else on the
host uses, drawn from a random range per :class:`UidPool`, so a sweep by uid can never hit an
unrelated process. Killing goes through process file descriptors (``/proc/<pid>`` directory fds
used as pidfds), so a recycled pid is never signalled by mistake. On Linux 6.15 and later a pidfd
also keeps the process's exit status once it is reaped (:func:`exit_status`), whoever reaps it:
the host then needs no helper process inside the sandbox to learn how a session ended.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import functools
import os
import random
import select
import signal
import struct
import sys
import threading
import time

__all__ = [
    "HOST_PROC",
    "Handle",
    "ProcInfo",
    "ProcRoot",
    "UidPool",
    "exit_status",
    "exit_status_supported",
    "list_procs",
    "pidfd_pid",
    "sweep",
]

UID_LOW, UID_HIGH = 1 << 20, 1 << 30


PIDFD_GET_INFO = 0xC040FF0B
"""``_IOWR(0xFF, 11, struct pidfd_info)`` with the 64-byte first version of the struct (6.13+)."""
PIDFD_INFO_EXIT = 0x8
"""The ``pidfd_info.mask`` bit of the exit status (Linux 6.15+); ``exit_code`` is at offset 60."""


def exit_status(pidfd: int) -> int | None:
    """The wait status of the process behind ``pidfd`` once it has ended and been reaped.

    None while it lives or is a zombie, or where the kernel keeps no exit status on pidfds.
    """
    buf = bytearray(64)
    struct.pack_into("=Q", buf, 0, PIDFD_INFO_EXIT)
    try:
        fcntl.ioctl(pidfd, PIDFD_GET_INFO, buf)
    except OSError:  # ENOTTY/EINVAL: an older kernel; ESRCH: not reaped yet on some versions
        return None
    (mask,) = struct.unpack_from("=Q", buf, 0)
    if not mask & PIDFD_INFO_EXIT:
        return None
    (status,) = struct.unpack_from("=i", buf, 60)
    return int(status)


@functools.cache
def exit_status_supported() -> bool:
    """Whether this kernel reports exit statuses through pidfds (probed once with a child)."""
    argv = [sys.executable, "-I", "-S", "-c", "import os; os._exit(7)"]
    try:
        pid = os.posix_spawn(sys.executable, argv, {})
    except OSError:
        return False
    pidfd = -1
    with contextlib.suppress(OSError):
        pidfd = os.pidfd_open(pid)
    with contextlib.suppress(ChildProcessError):  # SIGCHLD ignored by the host: reaped already
        os.waitpid(pid, 0)
    if pidfd < 0:
        return False
    try:
        return exit_status(pidfd) == 7 << 8
    finally:
        os.close(pidfd)


class UidPool:
    """Unprivileged uids for sessions: a random block per pool, handed out least recently used.

    Args:
        size: how many uids the block holds (at most that many live session families).
        seed: fixes the block (tests); by default it is random, so two sandboxes on one host (or
            two parallel test runs) practically never share a uid.
    """

    def __init__(self, size: int = 4096, seed: int | None = None) -> None:
        rng = random.Random(seed)
        self.base = rng.randrange(UID_LOW, UID_HIGH - size)
        self.size = size
        self._free: collections.deque[int] = collections.deque(range(self.base, self.base + size))
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            if not self._free:
                raise RuntimeError(f"all {self.size} session uids are in use")
            return self._free.popleft()

    def give_back(self, uid: int) -> None:
        """Return ``uid`` once no process of it is left (the caller swept it)."""
        with self._lock:
            self._free.append(uid)

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, int) and self.base <= uid < self.base + self.size


class ProcInfo:
    """What the kernel says about one process: ids and state."""

    __slots__ = ("pid", "sid", "state", "uid")

    def __init__(self, pid: int, uid: int, sid: int, state: str) -> None:
        self.pid, self.uid, self.sid, self.state = pid, uid, sid, state

    def __repr__(self) -> str:
        return f"ProcInfo(pid={self.pid}, uid={self.uid}, sid={self.sid}, state={self.state!r})"


def _info(dirfd: int, pid: int) -> ProcInfo | None:
    try:
        with open(os.open("stat", os.O_RDONLY, dir_fd=dirfd), "rb") as f:
            stat = f.read()
        with open(os.open("status", os.O_RDONLY, dir_fd=dirfd), "rb") as f:
            status = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    uid = -1
    for line in status.splitlines():
        if line.startswith(b"Uid:"):
            uid = int(line.split()[1])  # the real uid
            break
    return ProcInfo(pid, uid, int(fields[3]), fields[0].decode())


def pidfd_pid(pidfd: int) -> int:
    """The pid (in this pid namespace) of the process behind ``pidfd``; ProcessLookupError once
    it has ended."""
    with open(f"/proc/self/fdinfo/{pidfd}") as f:
        for line in f:
            if line.startswith("Pid:"):
                pid = int(line.split()[1])
                if pid <= 0:
                    raise ProcessLookupError("the process has ended")
                return pid
    raise ProcessLookupError("not a pidfd")


class Handle:
    """A live process held by a pidfd: its uid and session id (host and innermost namespace),
    every uid it holds (real, effective, saved, filesystem) and its pid namespace (an inode)."""

    __slots__ = ("host_sid", "inner_sid", "pid", "pidfd", "pidns", "uid", "uids")

    def __init__(self, pid: int, pidfd: int, uid: int, host_sid: int, inner_sid: int) -> None:
        self.pid, self.pidfd, self.uid = pid, pidfd, uid
        self.host_sid, self.inner_sid = host_sid, inner_sid
        self.uids: set[int] = {uid}
        self.pidns = 0

    @classmethod
    def open(cls, pid: int) -> Handle:
        """Hold ``pid`` (a host pid); ProcessLookupError if it is gone."""
        return cls.adopt(os.pidfd_open(pid), pid)

    @classmethod
    def adopt(cls, pidfd: int, pid: int | None = None) -> Handle:
        """Hold the process behind ``pidfd`` (its pid read from the kernel unless given).

        Takes ``pidfd`` (closed on failure); ProcessLookupError if the process is gone. What is
        read about it (uid, session, pid namespace) is checked to belong to it: the process was
        still alive after the reads, so its pid could not have been reused in between.
        """
        try:
            if pid is None:
                pid = pidfd_pid(pidfd)
            with open(f"/proc/{pid}/status", "rb") as f:
                status = f.read()
            pidns = os.stat(f"/proc/{pid}/ns/pid").st_ino
            fields = {}
            for line in status.splitlines():
                key, _, value = line.partition(b":")
                fields[key] = value.split()
            if not cls._alive(pidfd):
                raise ProcessLookupError(pid)
            sids = [int(v) for v in fields.get(b"NSsid", [])] or [os.getsid(pid)]
            handle = cls(pid, pidfd, int(fields[b"Uid"][0]), sids[0], sids[-1])
            handle.uids = {int(v) for v in fields[b"Uid"]}
            handle.pidns = pidns
            return handle
        except (OSError, KeyError, ValueError, IndexError):
            os.close(pidfd)
            raise ProcessLookupError(pid) from None

    @staticmethod
    def _alive(pidfd: int) -> bool:
        readable, _, _ = select.select([pidfd], [], [], 0)
        return not readable

    def alive(self) -> bool:
        return self.pidfd >= 0 and self._alive(self.pidfd)

    def exit_status(self, wait_s: float = 0.0) -> int | None:
        """The wait status once the process has ended and its parent reaped it (waits up to
        ``wait_s`` for the reap); None if it is not known by then (see :func:`exit_status`)."""
        deadline = time.monotonic() + wait_s
        while self.pidfd >= 0:
            status = exit_status(self.pidfd)
            if status is not None or time.monotonic() >= deadline:
                return status
            time.sleep(0.002)
        return None

    def kill(self) -> None:
        if self.pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


class ProcRoot:
    """A procfs to scan: ``/proc``, or a sandbox's own procfs held by an open directory fd.

    The fd keeps the sandbox's procfs (and so its pid namespace's process list) reachable for as
    long as any of its processes lives, even after the process it was opened through (the
    template) died. Shared by reference counting: :meth:`retain` and :meth:`release`.
    """

    def __init__(self, path: str = "/proc", *, hold: bool = False) -> None:
        self.path = path
        self.fd: int | None = os.open(path, os.O_RDONLY | os.O_DIRECTORY) if hold else None
        self._refs = 1
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """The pids listed (as strings); [] when the procfs is unreachable."""
        try:
            return [
                n for n in os.listdir(self.fd if self.fd is not None else self.path) if n.isdigit()
            ]
        except OSError:
            return []

    def open_pid(self, name: str) -> int:
        """A directory fd on ``<procfs>/<name>`` (usable as a pidfd)."""
        if self.fd is not None:
            return os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.fd)
        return os.open(f"{self.path}/{name}", os.O_RDONLY | os.O_DIRECTORY)

    def retain(self) -> ProcRoot:
        with self._lock:
            self._refs += 1
        return self

    def release(self) -> None:
        with self._lock:
            self._refs -= 1
            if self._refs > 0 or self.fd is None:
                return
            fd, self.fd = self.fd, None
        os.close(fd)


HOST_PROC = ProcRoot("/proc")


def list_procs(root: ProcRoot = HOST_PROC) -> list[ProcInfo]:
    """Every live process listed by ``root`` (zombies excluded)."""
    found = []
    for name in root.names():
        try:
            dirfd = root.open_pid(name)
        except OSError:
            continue
        try:
            info = _info(dirfd, int(name))
        finally:
            os.close(dirfd)
        if info is not None and info.state not in ("Z", "X"):
            found.append(info)
    return found


def sweep(
    uid: int | None, *, sid: int | None = None, root: ProcRoot = HOST_PROC, rounds: int = 200
) -> bool:
    """SIGKILL every live process of ``uid`` (and of session ``sid`` if given) until none is left.

    Scans ``root`` (the sandbox's own procfs when there is one: it lists only the sandbox's
    processes, with the sandbox's pids) and kills through ``/proc/<pid>`` directory fds, so a
    recycled pid is never hit. It repeats until a scan finds no process it has not already
    killed: a fork loop can make new processes between two scans (the session's process limit
    bounds how many), while a process that received SIGKILL can no longer fork. It does not
    wait for the killed processes to be reaped.

    Returns:
        True when a final scan found nothing new; False if new processes kept appearing.
    """
    if uid is None and sid is None:
        raise ValueError("sweep needs a uid or a session id")
    killed: set[str] = set()
    for _ in range(rounds):
        new = 0
        for name in root.names():
            if name not in killed and _kill_if(root, name, uid, sid):
                killed.add(name)
                new += 1
        if new == 0:
            return True
    return False


def _kill_if(root: ProcRoot, name: str, uid: int | None, sid: int | None) -> bool:
    try:
        dirfd = root.open_pid(name)
    except OSError:
        return False
    try:
        info = _info(dirfd, int(name))
        if info is None or info.state in ("Z", "X"):
            return False
        if (uid is not None and info.uid != uid) or (sid is not None and info.sid != sid):
            return False
        try:
            signal.pidfd_send_signal(dirfd, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True
    finally:
        os.close(dirfd)
