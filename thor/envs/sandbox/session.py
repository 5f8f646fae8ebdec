"""A session of the local sandbox: one persistent interpreter, forkable (see :mod:`.local`)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from thor.envs.sandbox.template import Proc
from thor.errors import SandboxError
from thor.types import ExecResult

if TYPE_CHECKING:
    from thor.envs.sandbox.local import LocalSandbox

__all__ = ["LocalSession"]


class LocalSession:
    """One persistent interpreter of a :class:`LocalSandbox` (see :class:`~thor.envs.sandbox.base.Session`).

    When the interpreter dies (a signal, a limit, ``os._exit``, a hard timeout), that cell's result
    says so (``state_lost=True``) and the next :meth:`run` starts a fresh interpreter
    transparently; its result has ``state_lost=True`` too.

    Example:
        >>> with LocalSandbox().open() as s:  # doctest: +SKIP
        ...     s.run("import os; token = os.urandom(8).hex()")
        ...     b = s.fork()  # the same token: state is copied, not replayed
        ...     assert b.run("print(token)").stdout == s.run("print(token)").stdout
    """

    def __init__(self, sandbox: LocalSandbox, proc: Proc, *, state_lost: bool = False) -> None:
        self._sandbox = sandbox
        self._proc: Proc | None = proc
        self._lock = threading.Lock()
        self._closed = False
        self._lost = state_lost  # the next result must say state_lost (a fresh interpreter)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pid(self) -> int | None:
        """The interpreter's pid on the host (None while no interpreter runs)."""
        return None if self._proc is None else self._proc.handle.pid

    @property
    def uid(self) -> int | None:
        """The session's own uid (isolated mode), shared with its forks."""
        return None if self._proc is None else self._proc.family.uid

    def run(
        self, code: str, *, timeout_s: float | None = None, stdin: str | None = None
    ) -> ExecResult:
        """Run one cell; ``timeout_s`` overrides the sandbox's per-cell wall-clock limit.

        ``stdin`` is what the cell reads from ``sys.stdin`` (python-level only: file descriptor 0
        stays ``/dev/null``).
        """
        limits = self._sandbox.limits
        timeout = limits.timeout_s if timeout_s is None else float(timeout_s)
        if not timeout > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
        size = len(code.encode("utf-8", "surrogatepass")) + len(
            (stdin or "").encode("utf-8", "surrogatepass")
        )
        if size > limits.code_bytes:
            reason = f"code too large: {size:,} bytes (limit {limits.code_bytes:,}: SandboxLimits.code_bytes)"
            return ExecResult(status="error", reason=reason, stderr=reason + "\n")
        with self._lock:
            proc = self._live_proc()
            result = self._sandbox._run(proc, code, timeout, stdin)
            if self._lost and not result.state_lost:
                result = result.model_copy(update={"state_lost": True})
            self._lost = False
            if proc.dead:
                self._proc = None
        return result

    def fork(self, *, reseed: bool = False) -> LocalSession:
        """A new, independent session with a copy of this one's state (copy-on-write; no replay).

        The branch gets a copy of the working directory (a new directory in the same scratch
        tmpfs: absolute paths into the parent's directory still reach the parent's files) and
        shares the family's uid, process limit, memory bound and scratch space.

        Args:
            reseed: give the branch fresh seeds for python's ``random``, numpy's global generator
                and every other generator the template loaded (sympy's included), e.g. for
                diverse continuations. By default the branch continues its parent's random
                streams exactly, like every other part of its state.
        """
        with self._lock:
            proc = self._live_proc()
            try:
                child = self._sandbox._fork(proc, reseed=reseed)
            finally:
                if proc.dead:
                    self._proc = None
                    self._lost = True
            return LocalSession(self._sandbox, child, state_lost=self._lost)

    def close(self) -> None:
        """Kill the interpreter and everything it started (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            proc, self._proc = self._proc, None
        if proc is not None:
            self._sandbox._discard(proc)

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("the session is closed")
        self._sandbox._check_open()

    def _live_proc(self) -> Proc:
        """The interpreter, replaced by a fresh one (state lost) if it died. Hold the lock."""
        self._check_open()
        if self._proc is None or self._proc.dead:
            self._proc = self._sandbox._take()
            self._lost = True
        return self._proc

    def __del__(self) -> None:
        # a session dropped without close() must not keep its processes until the sandbox closes
        if not getattr(self, "_closed", True) and getattr(self, "_proc", None) is not None:
            self.close()

    def __enter__(self) -> LocalSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalSession(pid={self.pid}, uid={self.uid}, closed={self._closed})"
