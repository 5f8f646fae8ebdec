"""The local sandbox behind the SandboxFusion HTTP API: ``POST /run_code`` and ``GET /v1/ping``.

Each request runs in a fresh session (the API is stateless) and gets the response shape of
SandboxFusion: ``{status: Success | Failed | SandboxError, message, compile_result, run_result:
{status: Finished | TimeLimitExceeded | Error, execution_time, return_code, stdout, stderr},
executor_pod_name, files}``. The server binds 127.0.0.1 unless told otherwise; any other address
requires a token, which clients send as ``Authorization: Bearer <token>``.

Example:
    >>> from thor.envs.sandbox.server import SandboxServer
    >>> with SandboxServer(port=0) as server:  # doctest: +SKIP
    ...     server.start()
    ...     print(server.url)
    http://127.0.0.1:...
"""

from __future__ import annotations

import base64
import json
import logging
import re
import signal
import threading
from typing import Any

from thor.envs.sandbox.config import LocalSandboxConfig
from thor.envs.sandbox.local import LocalSandbox, LocalSession
from thor.errors import ConfigError, SandboxError
from thor.serving import (
    BoundedHTTPServer,
    JSONRequestHandler,
    RequestError,
    ServerLimits,
    bearer_matches,
    check_bind,
    is_loopback,
)
from thor.types import ExecResult

__all__ = ["SandboxServer", "is_loopback", "response_from_result", "serve"]

log = logging.getLogger("thor.sandbox.server")

MAX_FILES_BYTES = 16 << 20


def _return_code(result: ExecResult) -> int | None:
    """The exit status a script would have had (SandboxFusion reports signals as negative)."""
    if result.status == "ok":
        return 0
    if result.status == "timeout":
        return None
    if m := re.match(r"SystemExit: (-?\d+)$", result.reason):
        return int(m.group(1))
    if m := re.match(r"killed by (SIG[A-Z0-9]+)", result.reason):
        try:
            return -int(signal.Signals[m.group(1)])
        except KeyError:
            return -9
    if m := re.match(r"the interpreter exited with code (\d+)", result.reason):
        return int(m.group(1))
    return 1 if result.status == "error" else -9


def response_from_result(result: ExecResult, files: dict[str, str] | None = None) -> dict[str, Any]:
    """The SandboxFusion ``/run_code`` response for one cell's result."""
    timeout = result.status == "timeout"
    run = {
        "status": "TimeLimitExceeded" if timeout else "Finished",
        "execution_time": result.duration_s,
        "return_code": _return_code(result),
        "stdout": result.stdout,
        "stderr": result.stderr,
    }
    return {
        "status": "Success" if result.status == "ok" else "Failed",
        "message": "" if result.ok else result.reason,
        "compile_result": None,
        "run_result": run,
        "executor_pod_name": None,
        "files": files or {},
    }


def _sandbox_error(message: str) -> dict[str, Any]:
    return {"status": "SandboxError", "message": message, "compile_result": None, "run_result": None,
            "executor_pod_name": None, "files": {}}  # fmt: skip


class SandboxServer:
    """A threaded HTTP server running cells in a :class:`LocalSandbox`.

    Args:
        config: the sandbox's config (isolation required by default).
        host: address to bind; anything but loopback requires ``token``.
        port: port to bind (0 picks a free one; see :attr:`url`).
        token: required bearer token (optional on loopback).
        max_concurrency: cells run at once; further requests wait for a slot.
        max_timeout_s: the largest ``run_timeout`` honoured.
        limits: worker threads, listen backlog and client timeouts (:class:`~thor.serving.ServerLimits`).
        slot_wait_s: how long a request waits for a free slot before it is answered ``SandboxError``.

    Raises:
        ConfigError: a non-loopback host without a token, or a limit below 1.
    """

    def __init__(
        self,
        config: LocalSandboxConfig | dict[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        token: str | None = None,
        max_concurrency: int = 4,
        max_timeout_s: float = 300.0,
        limits: ServerLimits | None = None,
        slot_wait_s: float = 600.0,
    ) -> None:
        check_bind(host, token, "the sandbox")
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.token = token
        self.max_timeout_s = max_timeout_s
        self.slot_wait_s = slot_wait_s
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._thread: threading.Thread | None = None
        handler = type("Handler", (_Handler,), {"server_ref": self})
        self.sandbox = LocalSandbox(config)
        try:
            self.httpd = BoundedHTTPServer((host, port), handler, limits)
        except OSError as err:
            self.sandbox.close()
            raise ConfigError(f"cannot serve on {host}:{port}: {err}") from err

    @property
    def url(self) -> str:
        host, port = str(self.httpd.server_address[0]), int(self.httpd.server_address[1])
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def start(self) -> SandboxServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="thor-sandbox-http", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()
        self.sandbox.close()

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request ------------------------------------------------------------------------
    def authorized(self, header: str | None) -> bool:
        return bearer_matches(header, self.token)

    def run_code(self, req: dict[str, Any]) -> dict[str, Any]:
        """Handle one ``/run_code`` request body (already parsed)."""
        code, language = req.get("code"), req.get("language", "python")
        timeout = req.get("run_timeout", 10)
        if not isinstance(code, str):
            return _sandbox_error("'code' must be a string")
        if language not in ("python", "python3"):
            return _sandbox_error(
                f"language {language!r} is not supported: this server runs python only"
            )
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0:
            return _sandbox_error("'run_timeout' must be a positive number")
        files, fetch = req.get("files") or {}, req.get("fetch_files") or []
        if not isinstance(files, dict) or not isinstance(fetch, list):
            return _sandbox_error("'files' must be an object and 'fetch_files' a list")
        timeout = min(float(timeout), self.max_timeout_s)
        if not self._slots.acquire(timeout=self.slot_wait_s):
            return _sandbox_error(f"no free slot within {self.slot_wait_s:g} s: the server is busy")
        try:
            try:
                with self.sandbox.open() as session:
                    if files:
                        setup = session.run(_write_files_code(files), timeout_s=timeout)
                        if not setup.ok:
                            return _sandbox_error(
                                f"could not write the request's files: {setup.reason}"
                            )
                    stdin = req.get("stdin")
                    result = session.run(
                        code, timeout_s=timeout, stdin=stdin if isinstance(stdin, str) else None
                    )
                    fetched = _fetch_files(session, fetch, timeout) if fetch else {}
            except SandboxError as err:
                return _sandbox_error(str(err))
        finally:
            self._slots.release()
        return response_from_result(result, fetched)


def _write_files_code(files: dict[str, Any]) -> str:
    data = {str(k): v for k, v in files.items() if isinstance(v, str)}
    return (
        "import base64 as _b, os as _o\n"
        f"for _p, _c in {data!r}.items():\n"
        "    _d = _o.path.dirname(_p)\n"
        "    if _d: _o.makedirs(_d, exist_ok=True)\n"
        "    with open(_p, 'wb') as _f: _f.write(_b.b64decode(_c))\n"
        "del _b, _o, _p, _c, _d\n"
    )


def _fetch_files(session: LocalSession, names: list[Any], timeout: float) -> dict[str, str]:
    wanted = [str(n) for n in names]
    code = (
        "import base64 as _b, json as _j, os as _o\n"
        f"print(_j.dumps({{_p: _b.b64encode(open(_p, 'rb').read()).decode() for _p in {wanted!r} "
        "if _o.path.isfile(_p)}))\n"
    )
    result = session.run(code, timeout_s=timeout)
    if not result.ok or result.truncated:
        return {}
    try:
        got = json.loads(result.stdout)
    except ValueError:
        return {}
    if not isinstance(got, dict):
        return {}
    return {
        k: v for k, v in got.items() if isinstance(k, str) and isinstance(v, str) and _is_b64(v)
    }


def _is_b64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return True


class _Handler(JSONRequestHandler):
    server_ref: SandboxServer

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/ping", "/ping"):
            self.send_json(200, "pong")
        else:
            raise RequestError("Not Found", 404)

    def do_POST(self) -> None:
        srv = self.server_ref
        if self.path.rstrip("/") != "/run_code":
            raise RequestError("Not Found", 404)
        if not srv.authorized(self.headers.get("Authorization")):
            raise RequestError("missing or wrong bearer token", 401)
        req = self.read_json(2 * srv.sandbox.limits.code_bytes + MAX_FILES_BYTES)
        if not isinstance(req, dict):
            raise RequestError("the body must be a JSON object")
        self.send_json(200, srv.run_code(req))


def serve(
    config: LocalSandboxConfig | dict[str, Any] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    max_concurrency: int = 4,
    limits: ServerLimits | None = None,
) -> None:
    """Run the server until interrupted (what ``thor sandbox serve`` calls)."""
    with SandboxServer(
        config,
        host=host,
        port=port,
        token=token,
        max_concurrency=max_concurrency,
        limits=limits,
    ) as server:
        log.info(
            "thor sandbox serving the SandboxFusion API on %s (isolated: %s)",
            server.url,
            server.sandbox.isolated,
        )
        server.serve_forever()
