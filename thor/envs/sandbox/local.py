"""The local sandbox: isolated, persistent, forkable python sessions from a pre-started template.

Example:
    >>> from thor.envs.sandbox import LocalSandbox
    >>> with LocalSandbox() as sandbox, sandbox.open() as session:  # doctest: +SKIP
    ...     session.run("x = 6 * 7").status
    ...     branch = session.fork()
    ...     branch.run("print(x)").stdout
    'ok'
    '42\\n'
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
import weakref
from typing import Any, ClassVar

from thor.config import validate_config
from thor.envs.sandbox.cgroup import CgroupUnavailable, MemoryCgroups, open_cgroups
from thor.envs.sandbox.channel import (
    Channel,
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    check_result,
    safe_text,
)
from thor.envs.sandbox.config import LocalSandboxConfig, SandboxLimits
from thor.envs.sandbox.isolation import resolve_isolation
from thor.envs.sandbox.procs import UidPool, exit_status_supported
from thor.envs.sandbox.session import LocalSession
from thor.envs.sandbox.template import Family, Proc, Template, death_reason
from thor.errors import IsolationError, SandboxError
from thor.types import ExecResult

__all__ = ["LocalSandbox", "LocalSession"]

log = logging.getLogger("thor.sandbox")

NO_CGROUP_WARNING = (
    "thor sandbox: no memory cgroup can be made here ({why}), so a session's total memory is not "
    "bounded as a whole: each process is bounded by RLIMIT_AS (memory_mb) and there are at most "
    "`processes` of them, the scratch tmpfs (/tmp and /dev/shm) by scratch_mb each and captured "
    "output by 2 x file_mb; System V IPC and memfds are refused (seccomp). To bound it, run thor "
    "as root where the memory controller can be delegated (cgroup v2: enabled in the parent of "
    "thor's cgroup; or cgroup v1 'memory' mounted), or set memory_cgroup=False to silence this."
)


class LocalSandbox:
    """A source of isolated python sessions on this machine.

    One template process (numpy and sympy imported, run by bubblewrap without a user namespace,
    so root inside its own namespaces) forks every session: opening one costs milliseconds. Each
    session family runs as a uid of its own with a private scratch tmpfs on ``/tmp``, no network,
    a read-only allowlist of host paths, a scrubbed environment and resource limits; a small pool
    of sessions is kept started ahead of :meth:`open`. All of a session's memory (and its forks')
    is bounded by a memory cgroup where one can be made (:attr:`memory_bound` says what holds
    here). See ``SECURITY.md`` for the threat model.

    Thread safety: many threads may open, fork and run different sessions at once; one session is
    used by one thread at a time (each session holds a lock).

    Args:
        config: a :class:`LocalSandboxConfig` (or a dict of its fields).

    Raises:
        IsolationError: isolation is required (the default) and unavailable here, with the fix.

    Example:
        >>> sandbox = LocalSandbox()  # doctest: +SKIP
        >>> session = sandbox.open()  # doctest: +SKIP
        >>> session.run("import sympy; print(sympy.factor('x**2-1'))").stdout  # doctest: +SKIP
        '(x - 1)*(x + 1)\\n'
        >>> sandbox.close()  # doctest: +SKIP
    """

    _shared: ClassVar[dict[str, LocalSandbox]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, config: LocalSandboxConfig | dict[str, Any] | None = None) -> None:
        self.config = validate_config(LocalSandboxConfig, config if config is not None else {})
        self.isolated = resolve_isolation(self.config)
        self.limits: SandboxLimits = self.config.limits
        self.cgroups, self.memory_bound = _memory_cgroups(self.config, self.isolated)
        self._uids = UidPool() if self.isolated else None
        self._lock = threading.RLock()
        self._closed = False
        self._procs: set[Proc] = set()
        self._pool: collections.deque[Proc] = collections.deque()
        self._want = threading.Event()
        text = self.limits.output_bytes + 512
        self._max_text = text
        self._max_frame = (2 * text + 4000) * 6 + 4096
        self._worker_limits = self.limits.worker_limits()
        # A branch is one fork where the kernel keeps exit statuses on pidfds (Linux 6.15+): the
        # host reads how it ended from there. Elsewhere a guardian process reports it (two forks).
        self._branch_guardian = not exit_status_supported()
        try:
            self._template: Template | None = Template(self.config, self.isolated)
        except BaseException:
            if self.cgroups is not None:
                self.cgroups.close()
            raise
        _instances.add(self)
        if self.config.pool_size:
            ref = weakref.ref(self)
            threading.Thread(
                target=_refill, args=(ref,), name="thor-sandbox-pool", daemon=True
            ).start()

    # -- public API -----------------------------------------------------------------------------
    @classmethod
    def shared(cls, config: LocalSandboxConfig | dict[str, Any] | None = None) -> LocalSandbox:
        """The process-wide sandbox for ``config``, started on first use (one per distinct config).

        An explicit, documented process-wide cache: envs that each need sessions share one
        template instead of starting their own. The instances are closed at interpreter exit
        (``atexit``); closing one by hand makes the next call start a new one.
        """
        cfg = validate_config(LocalSandboxConfig, config if config is not None else {})
        key = cfg.model_dump_json()
        with cls._shared_lock:
            found = cls._shared.get(key)
            if found is None or found.closed:
                found = cls._shared[key] = cls(cfg)
            return found

    @property
    def closed(self) -> bool:
        return self._closed

    def open(self) -> LocalSession:
        """A fresh session: an empty namespace, the preimported modules ready to import."""
        return LocalSession(self, self._take())

    def close(self) -> None:
        """Kill every session and the template (idempotent). Sessions then raise on use."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            procs = list(self._procs)
            self._procs.clear()
            self._pool.clear()
            template, self._template = self._template, None
        self._want.set()
        for proc in procs:
            proc.kill()
        if template is not None:
            template.close()
        if self.cgroups is not None:
            self.cgroups.close()

    def __enter__(self) -> LocalSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("isolated" if self.isolated else "UNPROTECTED")
        return f"LocalSandbox({state}, {len(self._procs)} live interpreters)"

    # -- processes ------------------------------------------------------------------------------
    def _take(self) -> Proc:
        while True:
            with self._lock:
                self._check_open()
                proc = self._pool.popleft() if self._pool else None
            self._want.set()
            if proc is None:
                return self._spawn()
            if proc.handle.alive():
                return proc
            self._discard(proc)

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("the sandbox is closed")

    def _live_template(self) -> Template:
        with self._lock:
            self._check_open()
            if self._template is not None and self._template.alive():
                return self._template
            old, self._template = self._template, None
            if old is not None:
                log.warning(
                    "the sandbox template died (%s); restarting it",
                    old.log_tail(300) or "no output",
                )
                old.close()
                for proc in list(self._pool):
                    self._discard(proc)
            self._template = Template(self.config, self.isolated)
            return self._template

    def _spawn(self) -> Proc:
        """A new interpreter straight from the template (restarted once if it died)."""
        channel, family = self._request()
        proc = Proc.await_hello(channel, family, time.monotonic() + self.config.open_timeout_s)
        return self._register(proc)

    def _request(self) -> tuple[Channel, Family]:
        """Ask the template for a new interpreter; its hello is awaited separately."""
        memory = self.limits.family_memory_mb << 20
        for attempt in (1, 2):
            template = self._live_template()
            family = Family(self._uids, template, self.cgroups, memory)
            channel, theirs = Channel.pair(self._max_frame)
            req = {
                "op": "open",
                "uid": family.uid,
                "scratch": family.new_dir(),
                "limits": self._worker_limits,
                "seccomp": self.config.seccomp,
                "loopback": self.config.loopback,
            }
            try:
                template.request_open(req, theirs, time.monotonic() + self.config.open_timeout_s)
                return channel, family
            except ChannelError:
                template.broken = True
                channel.close()
                family.release()
                if attempt == 2:
                    raise SandboxError(
                        "the sandbox template keeps dying; see the log above"
                    ) from None
            finally:
                theirs.close()
        raise AssertionError("unreachable")

    def _fork(self, parent: Proc, *, reseed: bool = False) -> Proc:
        family = parent.family
        channel, theirs = Channel.pair(self._max_frame)
        deadline = time.monotonic() + self.config.open_timeout_s
        guarded = self._branch_guardian
        req = {"op": "fork", "scratch": family.new_dir(), "guardian": guarded, "reseed": reseed}
        try:
            parent.channel.send(req, fds=(theirs.fileno(),), deadline=deadline)
            theirs.close()
            reply, _ = parent.channel.recv(deadline)
        except ChannelError as err:
            theirs.close()
            channel.close()
            raise SandboxError(f"fork failed: {self._ended(parent, err)}") from None
        if reply.get("type") != "forked":
            channel.close()
            if reply.get("type") == "died":
                reason = self._death(parent, reply)
                raise SandboxError(f"fork failed: the session died ({reason})")
            raise SandboxError(f"fork failed: {safe_text(reply.get('message', reply.get('type')))}")
        branch = Proc.await_hello(channel, family, deadline, guarded=guarded, branch=True)
        return self._register(branch)

    def _register(self, proc: Proc) -> Proc:
        with self._lock:
            if not self._closed:
                self._procs.add(proc)
                return proc
        proc.kill()
        raise SandboxError("the sandbox is closed")

    def _discard(self, proc: Proc) -> None:
        with self._lock:
            self._procs.discard(proc)
        proc.kill()

    def _refill_once(self) -> bool:
        """Start the interpreters the pool lacks, all at once; False when none was needed."""
        with self._lock:
            if self._closed:
                return False
            short = self.config.pool_size - len(self._pool)
        if short <= 0:
            return False
        pending: list[tuple[Channel, Family]] = []
        error: SandboxError | None = None
        for _ in range(short):
            try:
                pending.append(self._request())
            except SandboxError as err:
                error = err
                break
        deadline = time.monotonic() + self.config.open_timeout_s
        for channel, family in pending:
            try:
                proc = self._register(Proc.await_hello(channel, family, deadline))
            except SandboxError as err:
                error = err
                continue
            with self._lock:
                if not self._closed:
                    self._pool.append(proc)
                    continue
            self._discard(proc)
        if error is not None:
            raise error
        return True

    # -- cells ----------------------------------------------------------------------------------
    def _run(self, proc: Proc, code: str, timeout: float, stdin: str | None = None) -> ExecResult:
        cpu = float(self.limits.cpu_s) if self.limits.cpu_s is not None else timeout
        start = time.monotonic()
        deadline = start + timeout + self.limits.grace_s
        req = {"op": "run", "code": code, "timeout": timeout, "cpu": cpu, "stdin": stdin}
        try:
            proc.channel.send(req, deadline=deadline)
        except ChannelClosed:  # died between cells: its guardian's report may be waiting
            deadline = time.monotonic() + 0.2
        except ChannelTimeout:  # it stopped reading (SIGSTOP, a thread holding the GIL...)
            self._discard(proc)
            reason = f"the interpreter did not take the cell within {timeout + self.limits.grace_s:g} s (the previous cell left it unable to read) and was killed"
            return ExecResult(
                status="killed", reason=reason, duration_s=time.monotonic() - start, state_lost=True
            )
        try:
            msg, _ = proc.channel.recv(deadline)
        except ChannelTimeout:
            self._discard(proc)
            reason = f"wall-clock limit of {timeout:g} s exceeded; the interpreter did not stop and was killed"
            return ExecResult(
                status="timeout",
                reason=reason,
                duration_s=time.monotonic() - start,
                state_lost=True,
            )
        except ChannelError as err:
            return self._broken(proc, err, start)
        kind = msg.get("type")
        if kind == "result":
            try:
                checked = check_result(msg, self._max_text, time.monotonic() - start)
                return ExecResult(**checked)
            except ChannelError as err:
                return self._broken(proc, err, start)
        if kind == "died":
            reason = self._death(proc, msg)
            return ExecResult(
                status="killed",
                reason=reason,
                duration_s=time.monotonic() - start,
                state_lost=True,
            )
        return self._broken(
            proc, ChannelError(f"unexpected reply {safe_text(repr(kind), 40)}"), start
        )

    def _death(self, proc: Proc, report: dict[str, Any]) -> str:
        """Why ``proc`` died, from a ``died`` report or its exit status; ``proc`` is dropped.

        Only the fields :func:`death_reason` checks are read; the memory limit is named when the
        family's cgroup says its OOM killer struck (never on the sandbox's word).
        """
        memory = self.limits.family_memory_mb if proc.family.oom_killed() else None
        self._discard(proc)  # (the last member out removes the family's cgroup)
        fields = {k: report.get(k) for k in ("signal", "code", "cpu_s", "cpu_cap")}
        return death_reason(fields, memory)

    def _broken(self, proc: Proc, err: ChannelError, start: float) -> ExecResult:
        """The session broke the protocol or vanished: kill it and say so."""
        reason = self._ended(proc, err)
        return ExecResult(
            status="killed", reason=reason, duration_s=time.monotonic() - start, state_lost=True
        )

    def _ended(self, proc: Proc, err: ChannelError) -> str:
        """Why ``proc``'s channel failed (an unguarded branch's exit status comes from the
        kernel once its parent reaps it); the proc is killed and dropped."""
        report = None
        if isinstance(err, ChannelClosed) and not proc.guarded:
            report = proc.exit_report(wait_s=1.0)
        if report is not None:
            report["cpu_cap"] = float(self.limits.session_cpu_s)
            return self._death(proc, report)
        self._discard(proc)
        if isinstance(err, ChannelClosed):
            if proc.guarded:
                return "the interpreter ended without a report (its guardian was killed?)"
            return "the interpreter ended; its exit status was not collected (no reap in 1 s)"
        return f"the session broke the sandbox protocol and was killed: {err}"


_instances: weakref.WeakSet[LocalSandbox] = weakref.WeakSet()


def _refill(ref: weakref.ref[LocalSandbox]) -> None:
    """The pool's thread: keeps ``pool_size`` interpreters started (holds no strong reference)."""
    failures = 0
    while True:
        sandbox = ref()
        if sandbox is None or sandbox.closed:
            return
        want = sandbox._want
        want.clear()
        try:
            started = sandbox._refill_once()
            failures = 0
        except SandboxError as err:
            if sandbox.closed:
                return  # closed while starting one: not a failure
            started = False
            failures += 1
            log.warning("sandbox pool: could not start a session: %s", err)
        del sandbox
        if not started:
            want.wait(min(30.0, 0.5 * 2**failures) if failures else 1.0)


def _memory_cgroups(config: LocalSandboxConfig, isolated: bool) -> tuple[MemoryCgroups | None, str]:
    """The sandbox's memory cgroups (None without) and a sentence on what bounds memory here."""
    limits = config.limits
    if not isolated:
        return (
            None,
            f"not isolated: each process's address space only (memory_mb={limits.memory_mb})",
        )
    per_process = (
        f"each process's address space (memory_mb={limits.memory_mb}) times {limits.processes} "
        f"processes, /tmp and /dev/shm ({limits.scratch_mb} MB each) and captured output "
        f"({2 * limits.file_mb + 1} MB)"
    )
    if config.memory_cgroup is False:
        return None, f"no memory cgroup (memory_cgroup=False): {per_process}"
    try:
        groups = open_cgroups()
    except (CgroupUnavailable, OSError) as err:
        if config.memory_cgroup:
            raise IsolationError(
                f"memory_cgroup=True, but no memory cgroup can be made here: {err}. Run thor as "
                "root where the memory controller can be delegated, or set memory_cgroup=None"
            ) from None
        log.warning(NO_CGROUP_WARNING.format(why=err))
        return None, f"no memory cgroup ({err}): {per_process}"
    bound = (
        f"all memory of each session and its forks (processes, scratch, shared memory, captured "
        f"output) by a cgroup v{groups.version} limit of {limits.family_memory_mb} MB"
    )
    return groups, bound


@atexit.register
def _close_all() -> None:
    for sandbox in list(_instances):
        sandbox.close()
