"""The host's handles on the sandbox's processes: the template, session families and interpreters.

- :class:`Template`: the running template (bubblewrap + the zygote) and its control channel.
- :class:`Family`: a session and its forks. In isolated mode a family owns one uid that no other
  family uses; when its last member closes, every process of that uid is swept and the uid goes
  back to the pool.
- :class:`Proc`: one live interpreter: its channel and a pidfd on it (from the pid the kernel
  reported with its hello). Killing a proc kills its interpreter, its guardian and whatever else
  runs in its session, without trusting the template.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any, TypeGuard

from thor.envs.sandbox.channel import Channel, ChannelError
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
        self.pid = peer.pid
        try:
            self.proc_root = (
                ProcRoot(f"/proc/{self.pid}/root/proc", hold=True) if isolated else HOST_PROC
            )
        except OSError as err:
            self.close()
            raise SandboxError(f"cannot reach the sandbox's processes: {err}") from None

    def request_open(self, req: dict[str, Any], sock: socket.socket) -> None:
        """Ask for a new session on ``sock`` (the template answers nothing; the session says hello)."""
        with self._lock:
            self.channel.send(req, fds=(sock.fileno(),))

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
    """A session and its forks: one uid (isolated) or a list of scratch directories (not)."""

    def __init__(self, uids: UidPool | None, proc_root: ProcRoot) -> None:
        self.uids = uids
        self.uid = uids.take() if uids is not None else None
        self.proc_root = proc_root.retain()
        self.dirs: list[str] = []
        self.members = 0
        self._lock = threading.Lock()

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
        cls, channel: Channel, family: Family, deadline: float, *, guarded: bool = True
    ) -> Proc:
        """Wait for a new interpreter's hello and take hold of it (the family counts it)."""
        family.join()
        try:
            msg, peer = channel.recv(deadline, want_peer=True)
            if msg.get("type") == "error":
                raise SandboxError(
                    f"the sandbox could not start a session: {str(msg.get('message'))[:500]}"
                )
            if msg.get("type") != "hello" or peer is None:
                raise SandboxError(f"the sandbox sent {msg.get('type')!r} instead of a hello")
            if family.uid is not None and peer.uid != family.uid:
                raise SandboxError(
                    f"the session runs as uid {peer.uid}, not as its own uid {family.uid}"
                )
            handle = Handle.open(peer.pid)
        except (ChannelError, ProcessLookupError) as err:
            channel.close()
            family.leave()
            raise SandboxError(f"a new session did not start: {err}") from None
        except SandboxError:
            channel.close()
            family.leave()
            raise
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


def death_reason(msg: dict[str, Any]) -> str:
    """A human reason from a guardian's ``died`` report (validated: it comes from the sandbox)."""
    sig, code = msg.get("signal"), msg.get("code")
    cpu, cap = msg.get("cpu_s"), msg.get("cpu_cap")
    if isinstance(sig, int) and not isinstance(sig, bool) and sig > 0:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        reason = f"killed by {name}"
        if sig == signal.SIGKILL and _num(cpu) and _num(cap) and cpu >= cap - 1:
            return f"{reason} (the session's CPU time limit of {cap:g} s)"
        if sig == signal.SIGKILL and cpu is None and _num(cap):  # a branch: no CPU time known
            return f"{reason} (the session's CPU time limit of {cap:g} s, if it ran that long)"
        if sig == signal.SIGSEGV:
            return f"{reason} (segmentation fault, e.g. a C stack overflow from deep recursion)"
        if sig == signal.SIGXCPU:
            return f"{reason} (CPU time limit)"
        return reason
    if isinstance(code, int) and not isinstance(code, bool):
        return f"the interpreter exited with code {code} (os._exit or a crash)"
    return "the interpreter died"


def _num(v: object) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)
