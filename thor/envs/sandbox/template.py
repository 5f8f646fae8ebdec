"""The host's handles on the sandbox's processes: the template, session families and interpreters.

- :class:`Template`: the running template (bubblewrap + the zygote) and its control channel.
- :class:`Family`: a session and its forks. In isolated mode a family owns one uid that no other
  family uses, and a memory cgroup where one can be made; when its last member closes, every
  process of that uid is swept, the uid goes back to the pool and the cgroup is removed.
- :class:`Proc`: one live interpreter: its channel and a pidfd on it (from the kernel, with its
  hello), checked to run as the family's uid in the sandbox's pid namespace. Killing a proc kills
  its interpreter, its guardian and whatever else runs in its session, without trusting the
  template.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any, TypeGuard

from thor.envs.sandbox.cgroup import FamilyCgroup, MemoryCgroups
from thor.envs.sandbox.channel import Channel, ChannelError, Peer, safe_text
from thor.envs.sandbox.config import LocalSandboxConfig
from thor.envs.sandbox.isolation import launch_command
from thor.envs.sandbox.procs import HOST_PROC, Handle, ProcRoot, UidPool, sweep
from thor.errors import IsolationError, SandboxError

__all__ = ["Family", "Proc", "Template", "death_reason"]

log = logging.getLogger("thor.sandbox")


class Template:
    """A started template: the process, its control channel and where its processes are listed.

    Raises:
        IsolationError: bubblewrap could not start the sandbox (with its own message).
        SandboxError: the template did not come up in time.
    """

    def __init__(self, config: LocalSandboxConfig, isolated: bool) -> None:
        self.isolated = isolated
        self.broken = False  # set when the control channel failed
        self._lock = threading.Lock()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the template)
        channel, theirs = Channel.pair(max_frame=1 << 16)
        self.channel = channel
        launch = launch_command(config, isolated, theirs.fileno())
        try:
            self.popen = subprocess.Popen(
                launch.argv,
                env=launch.env,
                pass_fds=launch.pass_fds,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                start_new_session=True,
            )
        finally:
            launch.close_fds()
            theirs.close()
        try:
            msg, peer = channel.recv(time.monotonic() + config.start_timeout_s, want_peer=True)
            if msg.get("type") != "template" or peer is None:
                raise ChannelError(f"unexpected first message {msg.get('type')!r}")
        except ChannelError as err:
            self.close()
            text = self.log_tail()
            if isolated:
                raise IsolationError(
                    f"bubblewrap could not start the sandbox ({err}): {text or 'no output'}. "
                    "Run `thor sandbox check` for what to change."
                ) from None
            raise SandboxError(
                f"the sandbox template did not start ({err}): {text or 'no output'}"
            ) from None
        peer.close()
        self.pid = peer.pid
        try:
            self.pidns = os.stat(f"/proc/{self.pid}/ns/pid").st_ino  # every session's too
            self.proc_root = (
                ProcRoot(f"/proc/{self.pid}/root/proc", hold=True) if isolated else HOST_PROC
            )
        except OSError as err:
            self.close()
            raise SandboxError(f"cannot reach the sandbox's processes: {err}") from None

    def request_open(self, req: dict[str, Any], sock: socket.socket, deadline: float) -> None:
        """Ask for a new session on ``sock`` (the template answers nothing; the session says hello)."""
        with self._lock:
            self.channel.send(req, fds=(sock.fileno(),), deadline=deadline)

    def alive(self) -> bool:
        return not self.broken and self.popen.poll() is None

    def log_tail(self, limit: int = 2000) -> str:
        try:
            self._log.seek(0)
            return self._log.read()[-limit:].decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def close(self) -> None:
        """Close the control channel: the template exits (sessions it started live on)."""
        self.channel.close()
        if getattr(self, "proc_root", HOST_PROC) is not HOST_PROC:
            self.proc_root.release()
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self._log.close()


class Family:
    """A session and its forks: one uid (isolated) or a list of scratch directories (not).

    ``pidns``: the pid namespace its processes run in; ``cgroups``: where to make its memory
    cgroup of ``memory_bytes`` (None: no cgroup).
    """

    def __init__(
        self,
        uids: UidPool | None,
        template: Template,
        cgroups: MemoryCgroups | None = None,
        memory_bytes: int = 0,
    ) -> None:
        self.uids = uids
        self.uid = uids.take() if uids is not None else None
        self.pidns = template.pidns
        self.cgroups = cgroups
        self.cgroup: FamilyCgroup | None = None
        if cgroups is not None:
            try:
                self.cgroup = cgroups.family(memory_bytes)
            except OSError as err:
                if uids is not None and self.uid is not None:
                    uids.give_back(self.uid)
                raise SandboxError(f"cannot make the session's memory cgroup: {err}") from None
        self.proc_root = template.proc_root.retain()
        self.dirs: list[str] = []
        self.members = 0
        self._lock = threading.Lock()

    def oom_killed(self) -> bool:
        """Whether the memory limit killed one of the family's processes since the last call."""
        return self.cgroup is not None and self.cgroup.new_oom_kill()

    def new_dir(self) -> str | None:
        """A scratch directory on the host (not isolated); None when the sandbox makes its own."""
        if self.uid is not None:
            return None
        path = tempfile.mkdtemp(prefix="thor-session-")
        with self._lock:
            self.dirs.append(path)
        return path

    def join(self) -> None:
        with self._lock:
            self.members += 1

    def leave(self, sid: tuple[int, int] | None = None) -> None:
        """One member fewer (``sid``: its session id in the sandbox and on the host).

        A member's own session is swept when it leaves; the last one out sweeps the whole uid,
        frees it and deletes the family's scratch directories.
        """
        with self._lock:
            self.members -= 1
            last = self.members <= 0
        if self.uid is None and sid is not None:
            sweep(os.getuid(), sid=sid[1])
        elif not last and sid is not None:
            sweep(self.uid, sid=sid[0], root=self.proc_root)
        if last:
            self.release()

    def release(self) -> None:
        """Sweep the family's uid, free it and delete its directories (idempotent)."""
        if self.uid is not None and self.uids is not None:
            if sweep(self.uid, root=self.proc_root):
                self.uids.give_back(self.uid)
            else:
                log.error(
                    "processes of sandbox uid %d survived the sweep; the uid is retired", self.uid
                )
            self.uid = None
        if self.cgroup is not None and self.cgroups is not None:
            self.cgroups.retire(self.cgroup)
            self.cgroup = None
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)
        self.dirs = []
        root, self.proc_root = self.proc_root, HOST_PROC
        if root is not HOST_PROC:
            root.release()


class Proc:
    """One live interpreter of a family.

    ``guarded``: a guardian reports its death on the channel. An unguarded interpreter (a branch
    forked without one) just closes the channel; :meth:`exit_report` asks the kernel instead.
    """

    def __init__(
        self, channel: Channel, handle: Handle, family: Family, *, guarded: bool = True
    ) -> None:
        self.channel = channel
        self.handle = handle
        self.family = family
        self.guarded = guarded
        self.dead = False
        self._lock = threading.Lock()

    def exit_report(self, wait_s: float) -> dict[str, Any] | None:
        """How the interpreter ended, in the guardian's terms, from its pidfd (None: unknown)."""
        status = self.handle.exit_status(wait_s)
        if status is None:
            return None
        if os.WIFSIGNALED(status):
            return {"signal": os.WTERMSIG(status), "code": None}
        return {"signal": None, "code": os.WEXITSTATUS(status)}

    @classmethod
    def await_hello(
        cls,
        channel: Channel,
        family: Family,
        deadline: float,
        *,
        guarded: bool = True,
        branch: bool = False,
    ) -> Proc:
        """Wait for a new interpreter's hello and take hold of it (the family counts it).

        A new session is moved into the family's memory cgroup; a ``branch`` (forked from a
        member) is in it already, so no cgroup migration is paid for it.
        """
        family.join()
        peer = None
        try:
            msg, peer = channel.recv(deadline, want_peer=True)
            handle = _check_hello(msg, peer, family, attach=not branch)
        except (ChannelError, ProcessLookupError) as err:
            channel.close()
            family.leave()
            raise SandboxError(f"a new session did not start: {err}") from None
        except SandboxError:
            channel.close()
            family.leave()
            raise
        finally:
            if peer is not None:
                peer.close()  # a pidfd not taken
        return cls(channel, handle, family, guarded=guarded)

    def kill(self) -> None:
        """Kill the interpreter and everything in its session; idempotent."""
        with self._lock:
            if self.dead:
                return
            self.dead = True
        self.handle.kill()
        self.family.leave((self.handle.inner_sid, self.handle.host_sid))
        self.handle.close()
        self.channel.close()


def _check_hello(msg: dict[str, Any], peer: Peer | None, family: Family, *, attach: bool) -> Handle:
    if msg.get("type") == "error":
        raise SandboxError(
            f"the sandbox could not start a session: {safe_text(msg.get('message'))}"
        )
    if msg.get("type") != "hello" or peer is None:
        raise SandboxError(
            f"the sandbox sent {safe_text(repr(msg.get('type')), 60)} instead of a hello"
        )
    if family.uid is not None and peer.uid != family.uid:
        raise SandboxError(f"the session runs as uid {peer.uid}, not as its own uid {family.uid}")
    return _member(peer, family, attach)


def _member(peer: Peer, family: Family, attach: bool) -> Handle:
    """Hold the process that said hello, after checking that it belongs to ``family``.

    The pidfd comes from the kernel with the hello (SCM_PIDFD) where it can, so a writer that
    exited and whose pid went to another process is never mistaken for it; either way the process
    must run with the family's uid (every one of its uids) in the sandbox's pid namespace, or it
    is refused and left alone.
    """
    pidfd = peer.take_pidfd()
    handle = Handle.adopt(pidfd) if pidfd >= 0 else Handle.open(peer.pid)
    uid = family.uid if family.uid is not None else os.getuid()
    if handle.uids != {uid} or handle.pidns != family.pidns:
        handle.close()
        raise SandboxError(
            f"refused a hello from pid {handle.pid} (uids {sorted(handle.uids)}): not a process "
            f"of this session (uid {uid} in the sandbox's pid namespace)"
        )
    if family.cgroup is not None and attach:
        try:
            family.cgroup.attach(handle.pid)
        except OSError as err:
            handle.kill()
            handle.close()
            raise SandboxError(f"cannot move the session into its memory cgroup: {err}") from None
    return handle


def death_reason(msg: dict[str, Any], memory_mb: int | None = None) -> str:
    """A human reason from a ``died`` report (validated: it comes from the sandbox).

    ``memory_mb``: the family's memory limit, when its cgroup's OOM killer struck.
    """
    sig, code = _int(msg.get("signal"), 1, 64), _int(msg.get("code"), 0, 255)
    cpu, cap = msg.get("cpu_s"), msg.get("cpu_cap")
    cpu = cpu if _num(cpu) and math.isfinite(cpu) else None
    cap = cap if _num(cap) and math.isfinite(cap) else None
    if sig is not None:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        reason = f"killed by {name}"
        if sig == signal.SIGKILL and memory_mb is not None:
            return f"{reason} (the session's memory limit of {memory_mb} MB)"
        if sig == signal.SIGKILL and _num(cpu) and _num(cap) and cpu >= cap - 1:
            return f"{reason} (the session's CPU time limit of {cap:g} s)"
        if sig == signal.SIGKILL and cpu is None and _num(cap):  # a branch: no CPU time known
            return f"{reason} (the session's CPU time limit of {cap:g} s, if it ran that long)"
        if sig == signal.SIGSEGV:
            return f"{reason} (segmentation fault, e.g. a C stack overflow from deep recursion)"
        if sig == signal.SIGXCPU:
            return f"{reason} (CPU time limit)"
        return reason
    if code is not None:
        return f"the interpreter exited with code {code} (os._exit or a crash)"
    return "the interpreter died"


def _int(v: object, low: int, high: int) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and low <= v <= high else None


def _num(v: object) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)
