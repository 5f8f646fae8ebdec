"""The interpreter: runs cells in one persistent namespace, and forks branches of itself.

Session protocol (host -> interpreter, one frame per request, one reply each):

- ``{"op": "run", "code": str, "timeout": float, "cpu": float, "stdin": str | null}`` ->
  ``{"type": "result", "status": "ok" | "error" | "timeout", "stdout", "stderr", "reason",
  "duration_s", "truncated"}``
- ``{"op": "fork", "scratch": str | null, "guardian": bool, "reseed": bool}`` with a new socket
  end attached -> ``{"type": "forked"}``; the branch says ``hello`` on the new socket. The branch
  continues every random generator of its parent exactly, unless ``reseed`` asks for fresh seeds.
- ``{"op": "ping"}`` -> ``{"type": "pong"}``

When the interpreter dies instead of replying, its guardian sends ``{"type": "died", ...}``. A
branch forked without a guardian (``"guardian": false``, where the host reads exit statuses from
pidfds) sends nothing: the socket just closes, and the host asks the kernel how it ended.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import linecache
import math
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
import types
from typing import Any

from . import rng, wire
from .guardian import guard

MB = 1 << 20


class CellTimeout(BaseException):
    """Raised into the cell when its wall-clock or CPU budget is spent.

    A BaseException, so that a model's ``except Exception`` cannot swallow it.
    """

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def serve(sock: socket.socket, limits: dict[str, Any], capture: str | None = None) -> None:
    """Say hello, then answer requests until the host closes the socket.

    ``capture``: a directory for the cells' captured output (unnamed files); memfds without it.
    """
    rng.reseed(rng.TEMPLATE)  # the template's generators, fresh for this session
    Interpreter(sock, limits, capture).loop()


def _text(text: str) -> str:
    """``text`` made encodable (lone surrogates escaped): the host refuses anything else."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return _text(lines[-1][:1000]) if lines else ""


class Interpreter:
    """One persistent namespace plus the machinery around each cell."""

    def __init__(self, sock: socket.socket, limits: dict[str, Any], capture: str | None) -> None:
        self.sock = sock
        self.capture = capture
        self.cpu_hard = max(1, int(limits["session_cpu_s"]))
        self.file_limit = int(limits["file_mb"]) * MB
        self.output_bytes = int(limits["output_bytes"])
        self.pid = os.getpid()
        self.count = 0
        self.armed = False
        self.branches: set[int] = set()  # children to reap: branch guardians or branches
        module = types.ModuleType("__main__")
        module.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = module
        self.ns = module.__dict__
        self.null = os.open("/dev/null", os.O_RDWR)
        os.set_inheritable(self.null, False)
        self.out: io.TextIOWrapper
        self.err: io.TextIOWrapper
        self._new_streams()
        sys.path.insert(0, "")  # like the REPL: modules written into the scratch directory import
        signal.signal(signal.SIGALRM, self._on_signal)
        signal.signal(signal.SIGXCPU, self._on_signal)

    # -- the loop -------------------------------------------------------------------------
    def loop(self) -> None:
        self.hello()
        while True:
            got = wire.recv(self.sock, max_fds=1)
            if got is None:
                return
            msg, fds = got
            self._reap()
            op = msg.get("op")
            if op == "run":
                reply = self.run(msg)
            elif op == "fork" and len(fds) == 1:
                try:
                    if self.fork(msg, fds[0]):
                        continue  # this is the branch: it said hello on its own socket
                    reply = {"type": "forked"}
                except OSError as err:
                    hint = " (the session's process limit)" if err.errno == errno.EAGAIN else ""
                    reply = {
                        "type": "error",
                        "message": _text(f"the interpreter could not fork: {err}{hint}"),
                    }
            elif op == "ping":
                reply = {"type": "pong"}
            else:
                for fd in fds:
                    os.close(fd)
                reply = {"type": "error", "message": _text(f"unknown request {op!r:.100}")}
            wire.send(self.sock, reply)

    def hello(self) -> None:
        info = {"type": "hello", "pid": os.getpid(), "uid": os.getuid(), "cwd": os.getcwd()}
        wire.send(self.sock, info, creds=True)

    # -- one cell ---------------------------------------------------------------------------
    def run(self, msg: dict[str, Any]) -> dict[str, Any]:
        code, timeout, cpu = str(msg["code"]), float(msg["timeout"]), float(msg["cpu"])
        self.count += 1
        name = f"<cell {self.count}>"
        try:
            out_fd = self._output_file("stdout")
        except OSError as err:  # e.g. earlier cells left every file descriptor open
            return self._failure(f"the cell could not start: no file for its output ({err})")
        try:
            err_fd = self._output_file("stderr")
        except OSError as err:
            os.close(out_fd)
            return self._failure(f"the cell could not start: no file for its output ({err})")
        start = time.perf_counter()
        try:
            self._redirect(out_fd, err_fd, msg.get("stdin"))
            status, reason, trace = self._execute(code, name, timeout, cpu)
            if os.getpid() != self.pid:  # a child the cell forked finished the cell: it must not
                self._restore()  # answer the host (nor read its requests); its output is flushed
                os._exit(0)
            if trace:
                # past the output limit the write fails; the reason still says what happened
                with contextlib.suppress(OSError):
                    os.write(err_fd, trace.encode("utf-8", "backslashreplace"))
            self._restore()
            duration = time.perf_counter() - start
            stdout, cut_out, full_out = self._collect(out_fd)
            stderr, cut_err, full_err = self._collect(err_fd)
        finally:
            os.close(out_fd)
            os.close(err_fd)
        if full_out or full_err:
            limit = f"output limit of {self.file_limit // MB} MB exceeded"
            reason = f"{limit}; {reason}" if reason else limit
        return {
            "type": "result",
            "status": status,
            "stdout": stdout,
            "stderr": stderr,
            "reason": reason,
            "duration_s": duration,
            "truncated": cut_out or cut_err,
        }

    def _output_file(self, name: str) -> int:
        if self.capture is None:
            return os.memfd_create(name, os.MFD_CLOEXEC)
        return os.open(self.capture, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)

    @staticmethod
    def _failure(reason: str) -> dict[str, Any]:
        return {"type": "result", "status": "error", "stdout": "", "stderr": reason + "\n", "reason": reason,
                "duration_s": 0.0, "truncated": False}  # fmt: skip

    def _execute(self, code: str, name: str, timeout: float, cpu: float) -> tuple[str, str, str]:
        try:
            compiled = compile(code, name, "exec", dont_inherit=True)
        except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as err:
            text = "".join(traceback.format_exception_only(type(err), err))
            return "error", _last_line(text), text
        linecache.cache[name] = (len(code), None, code.splitlines(True), name)
        try:
            return self._guarded(compiled, timeout, cpu)
        except CellTimeout as late:  # fired while the cell's own handlers ran
            self._disarm()
            return "timeout", self._timeout_reason(late.kind, timeout, cpu), ""

    def _guarded(
        self, compiled: types.CodeType, timeout: float, cpu: float
    ) -> tuple[str, str, str]:
        self._arm(timeout, cpu)
        try:
            exec(compiled, self.ns)
            outcome = ("ok", "", "")
        except CellTimeout as hit:
            outcome = ("timeout", self._timeout_reason(hit.kind, timeout, cpu), "")
        except SystemExit as ex:
            outcome = self._exit_outcome(ex)
        except (Exception, KeyboardInterrupt, GeneratorExit) as err:
            text = self._format(err)
            outcome = ("error", _last_line(text), text)
        finally:
            self._disarm()
        return outcome

    @staticmethod
    def _exit_outcome(ex: SystemExit) -> tuple[str, str, str]:
        code = ex.code
        if code is None or code == 0:
            return "ok", "", ""
        if isinstance(code, int):
            return "error", _text(f"SystemExit: {code}"[:1000]), ""
        return "error", _text(f"SystemExit: {code}"[:1000]), _text(f"{code}\n")

    @staticmethod
    def _format(err: BaseException) -> str:
        tb = err.__traceback__
        while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell "):
            tb = tb.tb_next  # drop the worker's own frames
        return "".join(traceback.TracebackException(type(err), err, tb, compact=True).format())

    def _timeout_reason(self, kind: str, timeout: float, cpu: float) -> str:
        if kind == "cpu":
            return f"CPU time limit of {cpu:g} s exceeded"
        return f"wall-clock limit of {timeout:g} s exceeded"

    # -- limits -----------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.armed:
            raise CellTimeout("cpu" if signum == signal.SIGXCPU else "wall")

    def _arm(self, timeout: float, cpu: float) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = usage.ru_utime + usage.ru_stime
        soft = min(self.cpu_hard, max(1, math.ceil(used + cpu)))
        resource.setrlimit(resource.RLIMIT_CPU, (soft, self.cpu_hard))
        signal.signal(signal.SIGALRM, self._on_signal)  # an earlier cell may have replaced them
        signal.signal(signal.SIGXCPU, self._on_signal)
        self.armed = True
        signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001), 0.25)

    def _disarm(self) -> None:
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_hard, self.cpu_hard))

    # -- output -----------------------------------------------------------------------------
    def _new_streams(self) -> None:
        def stream(fd: int) -> io.TextIOWrapper:
            raw = io.FileIO(fd, "w", closefd=False)
            return io.TextIOWrapper(
                io.BufferedWriter(raw, 8192), encoding="utf-8", errors="backslashreplace"
            )

        self.out, self.err = stream(1), stream(2)
        sys.stdout = sys.__stdout__ = self.out  # type: ignore[misc]
        sys.stderr = sys.__stderr__ = self.err  # type: ignore[misc]

    def _redirect(self, out_fd: int, err_fd: int, stdin: str | None) -> None:
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        sys.stdout, sys.stderr = self.out, self.err
        sys.stdin = io.StringIO(stdin or "")

    def _restore(self) -> None:
        healthy = True
        for s in (self.out, self.err, sys.stdout, sys.stderr):
            try:
                s.flush()
            except (OSError, ValueError, AttributeError):
                healthy = False  # closed by the cell, or the output limit refused the rest
        os.dup2(self.null, 1)
        os.dup2(self.null, 2)
        if not healthy or self.out.closed or self.err.closed:
            self._new_streams()  # the old ones are dropped while fds 1 and 2 point to /dev/null
        sys.stdout, sys.stderr = self.out, self.err

    def _collect(self, fd: int) -> tuple[str, bool, bool]:
        """The captured text (head and tail when too long), whether it was cut, whether full."""
        size = os.fstat(fd).st_size
        cap = self.output_bytes
        if size <= cap:
            return os.pread(fd, size, 0).decode("utf-8", "replace"), False, size >= self.file_limit
        half = cap // 2
        head = os.pread(fd, half, 0).decode("utf-8", "replace")
        tail = os.pread(fd, cap - half, size - (cap - half)).decode("utf-8", "replace")
        note = f"\n[... {size - cap} bytes of output cut ...]\n"
        return head + note + tail, True, size >= self.file_limit

    # -- fork -------------------------------------------------------------------------------
    def fork(self, msg: dict[str, Any], fd: int) -> bool:
        """Branch this interpreter; True in the branch, False in the parent.

        With ``"guardian": false`` the branch is one fork: this interpreter's child, in a session
        of its own (``setsid``); the host learns how it ended from the kernel, whoever reaps it.
        With a guardian (kernels that keep no exit status on pidfds) the parent forks the
        guardian, which starts its own session and forks the branch's interpreter: two forks.
        Either child is reaped by pid (``_reap``, also on ``SIGCHLD``), never with a wildcard
        wait, so the cell's own children are left alone.

        The branch's random generators continue the parent's exactly (CPython reseeds the
        module-level one in a forked child; that is undone), or start afresh with ``"reseed"``.
        """
        guarded = msg.get("guardian", True) is not False
        state = rng.python_state()
        try:
            pid = os.fork()
        except OSError:
            os.close(fd)
            raise
        if pid:
            os.close(fd)
            self.branches.add(pid)
            if not guarded and signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL:
                # reap promptly: the host reads the branch's exit status once it is reaped. The
                # handler interrupts the wait for the next request (no SA_RESTART), or it would
                # only run once one came. A handler the cell installed is left alone.
                signal.signal(signal.SIGCHLD, self._on_child)
            return False
        try:
            self.sock.close()  # neither the guardian nor the branch may hold the parent's channel
            sock = socket.socket(fileno=fd)
            os.setsid()
            if guarded:
                branch = os.fork()
                if branch:
                    guard(branch, sock, float(self.cpu_hard))
            self.sock = sock
            self.pid = os.getpid()
            self.branches = set()
            self._enter_scratch(msg.get("scratch"))
            if msg.get("reseed") is True:
                rng.reseed([*rng.TEMPLATE, *rng.loaded()])
            else:
                rng.restore_python(state)
            self.hello()
            return True
        except Exception as err:  # tell the host why the branch could not start
            with contextlib.suppress(OSError):
                wire.send(
                    socket.socket(fileno=fd),
                    {"type": "error", "message": _text(f"fork failed: {err!r}")},
                )
            os._exit(70)

    def _reap(self) -> None:
        """Collect the branches (or their guardians) that ended (targeted waits only)."""
        for pid in list(self.branches):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid  # already collected (by the cell's own os.wait, for instance)
            if done:
                self.branches.discard(pid)

    def _on_child(self, _signum: int, _frame: Any) -> None:
        if os.getpid() == self.pid:  # not in a child the cell forked
            self._reap()

    def _enter_scratch(self, target: str | None) -> None:
        """Copy the parent's working directory into the branch's own, and move there.

        Isolated, the new directory lies in the same scratch tmpfs (``/tmp/branch-*``): files
        written elsewhere (absolute paths into ``/tmp``) stay shared with the family.
        """
        src = os.getcwd()
        if target is None:  # named by pid: mkdtemp's random name costs a millisecond in a fork
            target = f"/tmp/branch-{os.getpid()}"
            try:
                os.mkdir(target, 0o700)
            except FileExistsError:  # left by an earlier branch with a recycled pid
                target = tempfile.mkdtemp(prefix="branch-", dir="/tmp")
        with os.scandir(src) as entries:
            empty = next(entries, None) is None
        if not empty:  # an empty directory is the common case, and copytree costs a millisecond
            shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
        os.chdir(target)
        os.environ["HOME"] = os.environ["PWD"] = target
