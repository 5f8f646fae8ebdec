"""Memory cgroups: one per session family, so that all of a family's memory has one bound.

``RLIMIT_AS`` bounds each process's address space, not what a session pins outside it: its tmpfs
pages, captured output, System V shared memory, memfds, or the sum over its processes. A memory
cgroup counts all of these (page cache and tmpfs pages are charged to the cgroup of the process
that touches them). Each :class:`~thor.envs.sandbox.local.LocalSandbox` makes a directory of its
own in the memory hierarchy, next to or under the host process's cgroup, with one child per
session family whose limit is ``SandboxLimits.session_memory_mb``; the host moves every new
session's interpreter there before it runs a cell (its branches and children inherit it). Over the
limit the kernel's OOM killer ends a process of that family only, and the cell's result says so.

Both hierarchies work: cgroup v2 (``memory.max``; the controller must be delegable: enabled in the
parent, which holds no process of its own) and cgroup v1 (``memory.limit_in_bytes``). Where
neither can be used, :func:`open_cgroups` raises :class:`CgroupUnavailable` with the reason.

Example:
    >>> from thor.envs.sandbox.cgroup import CgroupUnavailable, open_cgroups
    >>> try:  # doctest: +SKIP
    ...     groups = open_cgroups()
    ... except CgroupUnavailable as err:
    ...     print(err)
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import threading
import time

__all__ = [
    "CgroupUnavailable",
    "FamilyCgroup",
    "MemoryCgroups",
    "find_memory_cgroup",
    "open_cgroups",
]

log = logging.getLogger("thor.sandbox")

PREFIX = "thor-sandbox-"


class CgroupUnavailable(Exception):
    """No memory cgroup can be made here; the message says why."""


def _mounts(mountinfo: str) -> list[tuple[str, str, str, str]]:
    """(mount point, root within the hierarchy, fstype, super options) of every cgroup mount."""
    found = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((fields[4], fields[3], tail[0], tail[2]))
    return found


def find_memory_cgroup(
    mountinfo: str | None = None, cgroups: str | None = None
) -> tuple[int, str] | str:
    """This process's cgroup directory in the memory hierarchy: ``(version, path)``, or a reason.

    ``mountinfo`` and ``cgroups`` default to ``/proc/self/mountinfo`` and ``/proc/self/cgroup``.
    """
    try:
        if mountinfo is None:
            with open("/proc/self/mountinfo") as f:
                mountinfo = f.read()
        if cgroups is None:
            with open("/proc/self/cgroup") as f:
                cgroups = f.read()
    except OSError as err:
        return f"cannot read this process's cgroups ({err})"
    paths: dict[str, str] = {}  # "2" for the unified hierarchy, else each v1 controller
    for line in cgroups.splitlines():
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        for name in ["2"] if hier == "0" else controllers.split(","):
            paths[name] = path
    for point, root, fstype, options in _mounts(mountinfo):
        key = "2" if fstype == "cgroup2" else ("memory" if "memory" in options.split(",") else "")
        if not key or key not in paths:
            continue
        own = os.path.normpath(os.path.join(point, os.path.relpath(paths[key], root)))
        if not own.startswith(point.rstrip("/") + "/") and own != point:
            continue  # our cgroup lies outside this mount (a cgroup namespace's view)
        if key == "memory":
            return 1, own
        if "memory" in _read(os.path.join(own, "cgroup.controllers")).split():
            return 2, own
    return "no memory controller is mounted for this process (cgroup v2 or v1 'memory')"


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


class FamilyCgroup:
    """The memory cgroup of one session family."""

    def __init__(self, path: str, version: int, limit: int) -> None:
        self.path, self.version, self.limit = path, version, limit
        self._oom_seen = 0

    def attach(self, pid: int) -> None:
        """Move the process ``pid`` (a host pid) into this cgroup."""
        _write(os.path.join(self.path, "cgroup.procs"), str(pid))

    def oom_kills(self) -> int:
        """How many processes the OOM killer ended in this cgroup so far."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        for line in _read(os.path.join(self.path, name)).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return 0

    def new_oom_kill(self) -> bool:
        """Whether the OOM killer ended a process here since the last call."""
        now = self.oom_kills()
        seen, self._oom_seen = self._oom_seen, now
        return now > seen

    def peak(self) -> int | None:
        """The most memory the family held at once, in bytes (None where the kernel keeps none)."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        text = _read(os.path.join(self.path, name)).strip()
        return int(text) if text.isdigit() else None


class MemoryCgroups:
    """A directory of one sandbox's own in the memory hierarchy; a child cgroup per family.

    Made by :func:`open_cgroups`. Thread-safe.
    """

    def __init__(self, base: str, version: int) -> None:
        self.base, self.version = base, version
        self._lock = threading.Lock()
        self._count = 0
        self._pending: list[str] = []  # children whose processes had not all exited yet

    def family(self, limit_bytes: int) -> FamilyCgroup:
        """A new family cgroup holding at most ``limit_bytes`` (no swap)."""
        with self._lock:
            self._count += 1
            path = os.path.join(self.base, f"f{self._count}")
        os.mkdir(path)
        try:
            if self.version == 2:
                _write(os.path.join(path, "memory.max"), str(limit_bytes))
                with contextlib.suppress(FileNotFoundError):
                    _write(os.path.join(path, "memory.swap.max"), "0")
            else:
                _write(os.path.join(path, "memory.limit_in_bytes"), str(limit_bytes))
                with contextlib.suppress(FileNotFoundError):  # absent without swap accounting
                    _write(os.path.join(path, "memory.memsw.limit_in_bytes"), str(limit_bytes))
        except OSError:
            os.rmdir(path)
            raise
        return FamilyCgroup(path, self.version, limit_bytes)

    def retire(self, group: FamilyCgroup) -> None:
        """Remove a family's cgroup once its processes are gone (later, if they are exiting)."""
        with self._lock:
            todo, self._pending = [*self._pending, group.path], []
        left = [path for path in todo if not _rmdir(path)]
        with self._lock:
            self._pending += left

    def close(self, wait_s: float = 5.0) -> None:
        """Remove every family cgroup and the sandbox's directory (waits for exiting processes)."""
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                todo, self._pending = list(self._pending), []
            children = (
                [e.path for e in os.scandir(self.base) if e.is_dir()]
                if os.path.isdir(self.base)
                else []
            )
            left = [p for p in dict.fromkeys([*todo, *children]) if not _rmdir(p)]
            if not left and _rmdir(self.base):
                return
            if time.monotonic() >= deadline:
                log.warning(
                    "sandbox cgroups not removed (processes still exiting): %s", left or self.base
                )
                return
            time.sleep(0.02)


def _rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError as err:
        if err.errno in (errno.EBUSY, errno.ENOTEMPTY):
            return False
        raise
    return True


def open_cgroups() -> MemoryCgroups:
    """A fresh directory for one sandbox's family cgroups; :class:`CgroupUnavailable` if none.

    Stale directories of dead processes (a host killed without closing its sandbox) are removed.
    """
    found = find_memory_cgroup()
    if isinstance(found, str):
        raise CgroupUnavailable(found)
    version, own = found
    name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    # v1: under our own cgroup. v2: a cgroup with processes cannot pass controllers on to
    # children ("no internal processes"), so try our own first, then a sibling in our parent.
    places = [own] if version == 1 else [own, os.path.dirname(own)]
    problems = []
    for parent in places:
        _remove_stale(parent)
        base = os.path.join(parent, name)
        try:
            os.mkdir(base)
        except OSError as err:
            problems.append(f"cannot create {base} ({err.strerror})")
            continue
        try:
            if version == 2:
                if parent == own:
                    _write(os.path.join(own, "cgroup.subtree_control"), "+memory")
                _write(os.path.join(base, "cgroup.subtree_control"), "+memory")
            return MemoryCgroups(base, version)
        except OSError as err:
            problems.append(f"cannot enable the memory controller under {parent} ({err.strerror})")
            _rmdir(base)
    raise CgroupUnavailable("; ".join(problems))


def _remove_stale(parent: str) -> None:
    """Remove the empty cgroup directories that sandboxes of dead processes left in ``parent``."""
    try:
        entries = [e for e in os.scandir(parent) if e.is_dir() and e.name.startswith(PREFIX)]
    except OSError:
        return
    for entry in entries:
        pid = entry.name[len(PREFIX) :].split("-")[0]
        if not pid.isdigit() or os.path.exists(f"/proc/{pid}"):
            continue
        with contextlib.suppress(OSError):
            for child in os.scandir(entry.path):
                if child.is_dir():
                    _rmdir(child.path)
            _rmdir(entry.path)
