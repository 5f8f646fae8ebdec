"""A client for the SandboxFusion HTTP API (``POST /run_code``), the service THOR used.

The API is stateless: each request runs one program in a fresh interpreter. A
:class:`RemoteSession` therefore keeps the cells that succeeded and replays them (output silenced)
before each new cell, so variables and imports carry over as in a local session, at the cost of
re-running earlier cells every time. Replay reproduces deterministic state only: a value drawn
from ``os.urandom`` or the clock differs on every replay, and side effects (files, prints to the
file descriptors of child processes) happen again. ``fork()`` copies the history. A replay that
fails (state that no longer reproduces) clears the history and the result says ``state_lost``.

Example:
    >>> from thor.envs.sandbox import RemoteSandbox
    >>> sandbox = RemoteSandbox({"url": "http://127.0.0.1:8080"})  # doctest: +SKIP
    >>> with sandbox.open() as s:  # doctest: +SKIP
    ...     s.run("x = 2")
    ...     s.run("print(x + 1)").stdout
    '3\\n'
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from thor.config import validate_config
from thor.envs.sandbox.config import RemoteSandboxConfig
from thor.errors import SandboxError
from thor.types import ExecResult

__all__ = ["RemoteSandbox", "RemoteSession", "replay_program", "result_from_response"]

log = logging.getLogger("thor.sandbox")

REPLAY_EXIT = 97
REPLAY_MARK = "thor: replaying the session's earlier cells failed: "

_TEMPLATE = """\
import sys as _thor_sys, os as _thor_os, traceback as _thor_tb, linecache as _thor_lc
_thor_cells = {cells!r}
_thor_code = {code!r}
_thor_saved = (_thor_sys.stdout, _thor_sys.stderr)
_thor_sys.stdout = _thor_sys.stderr = open(_thor_os.devnull, "w")
for _thor_i, _thor_c in enumerate(_thor_cells):
    try:
        exec(compile(_thor_c, "<replay %d>" % (_thor_i + 1), "exec"), globals())
    except SystemExit as _thor_e:
        if _thor_e.code not in (None, 0):
            _thor_sys.stdout, _thor_sys.stderr = _thor_saved
            print({mark!r} + "SystemExit: %s" % (_thor_e.code,), file=_thor_sys.stderr, flush=True)
            raise SystemExit({exit})
    except Exception as _thor_e:
        _thor_sys.stdout, _thor_sys.stderr = _thor_saved
        print({mark!r} + "%s: %s" % (type(_thor_e).__name__, _thor_e), file=_thor_sys.stderr, flush=True)
        raise SystemExit({exit})
_thor_sys.stdout, _thor_sys.stderr = _thor_saved
_thor_lc.cache["<cell>"] = (len(_thor_code), None, _thor_code.splitlines(True), "<cell>")
try:
    exec(compile(_thor_code, "<cell>", "exec"), globals())
except SystemExit:
    raise
except Exception as _thor_e:
    _thor_t = _thor_e.__traceback__
    while _thor_t is not None and _thor_t.tb_frame.f_code.co_filename != "<cell>":
        _thor_t = _thor_t.tb_next
    _thor_tb.print_exception(type(_thor_e), _thor_e, _thor_t)
    _thor_sys.stderr.flush()
    raise SystemExit(1)
"""


def replay_program(history: list[str], code: str) -> str:
    """The program that replays ``history`` silently, then runs ``code`` as ``<cell>``."""
    return _TEMPLATE.format(cells=list(history), code=code, mark=REPLAY_MARK, exit=REPLAY_EXIT)


def _encodable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:1000] if lines else ""


def result_from_response(resp: dict[str, Any]) -> ExecResult:
    """Map a SandboxFusion ``/run_code`` response onto an :class:`ExecResult`.

    Raises:
        SandboxError: the response reports a sandbox-side error or is malformed.
    """
    status = resp.get("status")
    run = resp.get("run_result")
    if status == "SandboxError" or status not in ("Success", "Failed"):
        message = _encodable(str(resp.get("message") or status)[:500])
        raise SandboxError(f"the remote sandbox failed: {message}")
    if not isinstance(run, dict):
        raise SandboxError(f"the remote sandbox returned no run_result (status {status})")
    stdout, stderr = run.get("stdout") or "", run.get("stderr") or ""
    duration = run.get("execution_time") or 0.0
    if (
        not isinstance(stdout, str)
        or not isinstance(stderr, str)
        or not isinstance(duration, int | float)
        or isinstance(duration, bool)
        or not math.isfinite(duration)
    ):
        raise SandboxError("the remote sandbox returned a malformed run_result")
    # text from another server: lone surrogates (valid JSON escapes) would break whoever writes
    # the result out, so they are escaped here
    stdout, stderr = _encodable(stdout), _encodable(stderr)
    common = {"stdout": stdout, "stderr": stderr, "duration_s": max(0.0, float(duration))}
    if run.get("status") == "TimeLimitExceeded":
        return ExecResult(status="timeout", reason="wall-clock limit exceeded (remote)", **common)
    if run.get("status") != "Finished":
        raise SandboxError(f"the remote sandbox could not run the code: {str(stderr)[:500]}")
    code = run.get("return_code")
    if code == 0:
        return ExecResult(status="ok", **common)
    if isinstance(code, int) and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return ExecResult(status="killed", reason=f"killed by {name}", **common)
    reason = _last_line(stderr) or f"SystemExit: {code}"
    if code == REPLAY_EXIT and REPLAY_MARK in stderr:
        mark = stderr[stderr.index(REPLAY_MARK) :]
        return ExecResult(status="error", reason=_last_line(mark), state_lost=True, **common)
    return ExecResult(status="error", reason=reason, **common)


class RemoteSandbox:
    """Sessions on a SandboxFusion server (or ``thor sandbox serve``).

    Network errors, HTTP 5xx/429 and sandbox-side errors are retried ``config.retries`` times
    with exponential backoff, then raise :class:`SandboxError`. Errors in the code are results.

    Args:
        config: a :class:`RemoteSandboxConfig` (or a dict of its fields: at least ``url``).

    Example:
        >>> RemoteSandbox({"url": "http://127.0.0.1:8080"}).open().closed
        False
    """

    def __init__(self, config: RemoteSandboxConfig | dict[str, Any]) -> None:
        self.config = validate_config(RemoteSandboxConfig, config)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def open(self) -> RemoteSession:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        return RemoteSession(self)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> RemoteSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_code(self, code: str, timeout_s: float) -> dict[str, Any]:
        """One ``POST /run_code`` (with retries): the server's JSON response."""
        body = json.dumps({"code": code, "language": "python", "run_timeout": timeout_s}).encode()
        headers = {"Content-Type": "application/json"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        url = self.config.url.rstrip("/") + "/run_code"
        wait = self.config.backoff_s
        problem = ""
        for attempt in range(self.config.retries + 1):
            if attempt:
                time.sleep(wait)
                wait *= 2
            req = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(
                    req, timeout=timeout_s + self.config.request_timeout_s
                ) as r:
                    resp = json.loads(r.read())
            except urllib.error.HTTPError as err:
                text = err.read()[:300].decode("utf-8", "replace")
                if err.code < 500 and err.code != 429:
                    raise SandboxError(f"{url}: HTTP {err.code}: {text}") from None
                problem = f"HTTP {err.code}: {text}"
                continue
            except (urllib.error.URLError, OSError, ValueError) as err:
                problem = str(getattr(err, "reason", err))
                continue
            if isinstance(resp, dict) and resp.get("status") != "SandboxError":
                return resp
            detail = resp.get("message") if isinstance(resp, dict) else resp
            problem = f"sandbox error: {_encodable(str(detail)[:300])}"
        raise SandboxError(f"{url} failed after {self.config.retries + 1} attempts: {problem}")


class RemoteSession:
    """A session on a stateless remote sandbox: successful cells are replayed before each new one."""

    def __init__(self, sandbox: RemoteSandbox, history: list[str] | None = None) -> None:
        self._sandbox = sandbox
        self.history: list[str] = list(history or [])
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def run(self, code: str, *, timeout_s: float | None = None) -> ExecResult:
        """Replay the history, run ``code``; keep ``code`` in the history if it succeeded."""
        timeout = self._sandbox.config.timeout_s if timeout_s is None else float(timeout_s)
        with self._lock:
            if self._closed or self._sandbox.closed:
                raise SandboxError("the session is closed")
            program = replay_program(self.history, code)
            size = len(program.encode("utf-8", "surrogatepass"))
            if size > self._sandbox.config.code_bytes:
                limit = self._sandbox.config.code_bytes
                reason = (
                    f"code too large: {size:,} bytes with the replayed history (limit {limit:,})"
                )
                return ExecResult(status="error", reason=reason, stderr=reason + "\n")
            result = result_from_response(self._sandbox.run_code(program, timeout))
            if result.state_lost:
                self.history = []
            elif result.status == "ok":
                self.history.append(code)
            return result

    def fork(self, *, reseed: bool = False) -> RemoteSession:
        """A new session with a copy of the history (the branch replays it: no state is copied).

        ``reseed`` changes nothing here: a replay draws whatever the replayed cells draw (the
        same numbers only where they seed their generators themselves).
        """
        with self._lock:
            if self._closed:
                raise SandboxError("the session is closed")
            return RemoteSession(self._sandbox, self.history)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
