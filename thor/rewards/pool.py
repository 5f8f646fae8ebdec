"""A small pool of verifier worker processes with real per-pair timeouts.

Each worker is a separate Python process (:mod:`thor.rewards._worker`) that holds sympy and
math-verify, limited by RLIMIT_AS. The parent sends a batch of pairs in one message and reads one
reply per pair; every pair has its own deadline (from the previous reply, or from the send). A
pair that passes its deadline gets a timed-out result, its worker is killed (SIGKILL: it may be
deep in C code that no signal handler would interrupt) and replaced, and the rest of the batch goes
on on a fresh worker. Timeouts are measured in the calling thread with ``poll``; no signal is used
in the caller, so this works from any thread and under asyncio.

Example:
    >>> pool = WorkerPool(size=1, timeout_s=10.0)  # doctest: +SKIP
    >>> pool.run([("\\\\frac{1}{2}", "0.5")])  # doctest: +SKIP
    [WorkerResult(equal=True, reason='math-verify: equal', timed_out=False)]
    >>> pool.close()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from thor.errors import RewardError

__all__ = ["WorkerPool", "WorkerResult"]

_WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")


@dataclass(frozen=True)
class WorkerResult:
    """The outcome of one pair in a worker."""

    equal: bool
    reason: str
    timed_out: bool = False
    answer: str | None = None
    """The answer extracted from a response (pairs of kind ``response`` or ``extract``)."""


class _Dead(Exception):
    """The worker process ended (its exit status is in the message)."""


class _Worker:
    """One worker process and the parent's end of its pipes."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the worker)
        env = dict(os.environ)
        env.setdefault("PYTHONHASHSEED", "0")
        self.proc = subprocess.Popen(
            [sys.executable, _WORKER_SCRIPT, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C in the caller's terminal is the caller's business
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self._fd = self.proc.stdout.fileno()
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self._buf = bytearray()
        self.ready = False

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The next reply, or ``None`` when ``deadline`` (monotonic) passes first."""
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                try:
                    msg = json.loads(line)
                except ValueError:
                    msg = None
                if not isinstance(msg, dict):
                    self.kill()
                    raise _Dead(f"worker broke the protocol ({line[:80]!r})")
                return msg
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not self._poll.poll(max(1, int(remaining * 1000) + 1)):
                continue
            chunk = os.read(self._fd, 1 << 16)
            if not chunk:
                raise _Dead(self.describe_exit())
            self._buf += chunk

    def send(self, pairs: Sequence[tuple[str, ...]]) -> None:
        assert self.proc.stdin is not None
        data = json.dumps({"pairs": [list(p) for p in pairs]}).encode("ascii") + b"\n"
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as err:
            raise _Dead(f"{self.describe_exit()} ({err})") from None

    def wait_ready(self, timeout_s: float) -> None:
        if self.ready:
            return
        try:
            msg = self.read(time.monotonic() + timeout_s)
        except _Dead as err:
            raise RewardError(f"verifier worker failed to start: {err}") from None
        if msg is None:
            self.kill()
            raise RewardError(f"verifier worker did not start within {timeout_s:.0f} s")
        if not msg.get("ready"):
            self.kill()
            raise RewardError(f"verifier worker sent {msg!r} instead of its ready message")
        self.ready = True

    def describe_exit(self) -> str:
        code = self.proc.poll()
        if code is None:
            try:
                code = self.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                return "worker stopped answering"
        tail = self.stderr_tail()
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return f"worker {how}" + (f": {tail}" if tail else "")

    def stderr_tail(self, limit: int = 400) -> str:
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - limit))
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return lines[-1] if lines else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL cannot be ignored
            self.proc.wait(timeout=5.0)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._stderr.close()


class WorkerPool:
    """Worker processes that verify pairs, each pair under its own wall-clock timeout.

    Args:
        size: number of worker processes.
        timeout_s: per-pair timeout; a pair that takes longer costs its worker (killed, replaced).
        memory_limit_mb: RLIMIT_AS of each worker (``None``: no limit).
        start_timeout_s: how long a starting worker may take to import math-verify.
        options: passed to the worker's comparison (``float_rounding``, ``numeric_precision``,
            ``corrections``).
    """

    def __init__(
        self,
        size: int,
        *,
        timeout_s: float,
        memory_limit_mb: int | None = 1024,
        start_timeout_s: float = 120.0,
        options: dict[str, Any] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.size = size
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self._config = {
            "memory_limit_mb": memory_limit_mb,
            "cpu_budget_s": timeout_s * 2 + 5,
            **(options or {}),
        }
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.restarts = 0
        for _ in range(size):
            self._idle.put(self._spawn())

    def _spawn(self) -> _Worker:
        worker = _Worker(self._config)
        with self._lock:
            self._all.add(worker)
        return worker

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        with self._lock:
            self._all.discard(worker)
            self.restarts += 1
            if self._closed:
                raise RewardError("the verifier was closed")
        return self._spawn()

    def run(self, pairs: Sequence[tuple[str, ...]]) -> list[WorkerResult]:
        """Verify ``pairs`` on one worker at a time (blocks until a worker is free)."""
        results: list[WorkerResult] = []
        retried: set[int] = set()
        while len(results) < len(pairs):
            worker = self._take()
            try:
                if worker.proc.poll() is not None and not worker.ready:
                    worker = self._replace(worker)
                try:
                    worker.wait_ready(self.start_timeout_s)
                except RewardError:
                    worker = self._replace(worker)  # the next caller gets a fresh one
                    raise
                worker = self._run_on(worker, pairs[len(results) :], results, retried)
            finally:
                self._idle.put(worker)
        return results

    def wait_ready(self) -> None:
        """Block until every worker has started (a worker that fails to start raises)."""
        taken: list[_Worker] = []
        try:
            for _ in range(self.size):
                taken.append(self._take())
            for i, worker in enumerate(taken):
                if worker.proc.poll() is not None and not worker.ready:
                    taken[i] = worker = self._replace(worker)
                worker.wait_ready(self.start_timeout_s)
        finally:
            for worker in taken:
                self._idle.put(worker)

    def _take(self) -> _Worker:
        while True:
            if self._closed:
                raise RewardError("the verifier was closed")
            try:
                return self._idle.get(timeout=0.5)
            except queue.Empty:
                continue

    def _run_on(
        self,
        worker: _Worker,
        pairs: Sequence[tuple[str, ...]],
        results: list[WorkerResult],
        retried: set[int],
    ) -> _Worker:
        """Run ``pairs`` on ``worker``, appending to ``results``; returns the worker to keep.

        A worker that dies (rather than times out) on a pair gets that pair retried once on a
        fresh worker: it may have been killed from outside; a pair that kills two workers is
        reported as such.
        """
        try:
            worker.send(pairs)
        except _Dead:
            return self._replace(worker)  # it died while idle: the batch is retried on a new one
        deadline = time.monotonic() + self.timeout_s
        for _ in pairs:
            try:
                msg = worker.read(deadline)
            except _Dead as err:
                if len(results) not in retried:
                    retried.add(len(results))
                else:
                    results.append(WorkerResult(False, f"worker: died twice on this pair ({err})"))
                return self._replace(worker)
            if msg is None:
                results.append(
                    WorkerResult(
                        False,
                        f"timeout: no verdict within {self.timeout_s:g} s; worker killed and replaced",
                        timed_out=True,
                    )
                )
                return self._replace(worker)
            answer = msg.get("answer")
            results.append(
                WorkerResult(
                    bool(msg["equal"]),
                    str(msg["reason"]),
                    answer=answer if isinstance(answer, str) else None,
                )
            )
            deadline = time.monotonic() + self.timeout_s
        return worker

    def close(self) -> None:
        """Kill every worker (idempotent). Calls in flight end with a 'closed' error."""
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.kill()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and monitoring)."""
        with self._lock:
            return [w.proc.pid for w in self._all if w.proc.poll() is None]
