"""An OpenAI-compatible completions server over any policy (``thor serve``).

Serves ``GET /v1/models`` and ``POST /v1/completions`` (prompt as text or token ids, or a batch of
either; ``max_tokens``, ``temperature``, ``top_p``, ``seed``, ``stop``, ``logprobs``, and vLLM's
``top_k``, ``return_tokens_as_token_ids`` and ``include_stop_str_in_output``). It binds to
127.0.0.1 unless told otherwise. Concurrent requests are batched: a worker thread collects the
requests that arrive within ``batch_wait_s`` and generates them in one call (requests with
different seeds share a batch when the policy accepts per-row seeds, as HF and scripted ones do).

Example:
    >>> from thor.agents.backends.server import PolicyServer
    >>> from thor.testing import ScriptedPolicy
    >>> with PolicyServer(ScriptedPolicy(lambda p: "4"), port=0, model_name="toy") as server:
    ...     server.url.startswith("http://127.0.0.1:")
    True
"""

from __future__ import annotations

import inspect
import json
import logging
import queue
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import ValidationError

from thor.agents.backends.base import Policy, Prompt
from thor.config import format_validation_error
from thor.errors import PolicyError
from thor.types import Completion, SamplingParams

__all__ = ["PolicyServer", "serve_policy"]

log = logging.getLogger(__name__)

_MAX_BODY = 64 << 20
_UNSUPPORTED = {"stream": False, "echo": False, "n": 1, "best_of": 1, "suffix": None}


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Job:
    prompt: Prompt
    params: SamplingParams
    seed: int
    done: threading.Event = field(default_factory=threading.Event)
    result: Completion | None = None
    error: Exception | None = None


class _Batcher:
    """One worker thread: collect jobs for ``wait_s``, group compatible ones, generate each group."""

    def __init__(self, policy: Policy, max_batch: int, wait_s: float) -> None:
        self.policy = policy
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._row_seeds = "row_seeds" in inspect.signature(policy.generate).parameters
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="thor-serve-batcher", daemon=True)
        self._thread.start()

    def run(self, jobs: list[_Job]) -> list[Completion]:
        for job in jobs:
            self._queue.put(job)
        out: list[Completion] = []
        for job in jobs:
            job.done.wait()
            if job.error is not None:
                raise job.error
            assert job.result is not None
            out.append(job.result)
        return out

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            deadline = time.monotonic() + self.wait_s
            while len(jobs) < self.max_batch:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this round, then stop
                    break
                jobs.append(nxt)
            groups: dict[str, list[_Job]] = {}
            for job in jobs:
                key = job.params.model_dump_json(exclude={"seed"})
                if not self._row_seeds:
                    key += f"|{job.seed}"
                groups.setdefault(key, []).append(job)
            for group in groups.values():
                self._generate(group)

    def _generate(self, group: list[_Job]) -> None:
        try:
            prompts = [j.prompt for j in group]
            if self._row_seeds:
                params = group[0].params.model_copy(update={"seed": None})
                results = self.policy.generate(prompts, params, row_seeds=[j.seed for j in group])  # type: ignore[call-arg]
            else:
                results = self.policy.generate(
                    prompts, group[0].params.model_copy(update={"seed": group[0].seed})
                )
            for job, res in zip(group, results, strict=True):
                job.result = res
        except Exception as err:  # reported to each waiting request as an HTTP 500
            log.exception("generation failed")
            for job in group:
                job.error = err
        finally:
            for job in group:
                job.done.set()


def _parse_prompts(raw: Any) -> list[Prompt]:
    if isinstance(raw, str):
        return [raw]
    if (
        isinstance(raw, list)
        and raw
        and all(isinstance(t, int) and not isinstance(t, bool) for t in raw)
    ):
        return [list(raw)]
    if isinstance(raw, list) and raw:
        out: list[Prompt] = []
        for p in raw:
            if isinstance(p, str):
                out.append(p)
            elif (
                isinstance(p, list)
                and p
                and all(isinstance(t, int) and not isinstance(t, bool) for t in p)
            ):
                out.append(list(p))
            else:
                raise _BadRequest("each prompt must be a string or a non-empty list of token ids")
        return out
    raise _BadRequest("'prompt' must be a string, a list of token ids, or a list of either")


def _sampling_params(body: dict[str, Any]) -> SamplingParams:
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    top_k = body.get("top_k") or 0
    fields = {
        "max_tokens": body.get("max_tokens") if body.get("max_tokens") is not None else 16,
        "temperature": body.get("temperature") if body.get("temperature") is not None else 1.0,
        "top_p": body.get("top_p") if body.get("top_p") is not None else 1.0,
        "top_k": 0 if top_k == -1 else top_k,
        "stop": stop,
    }
    try:
        return SamplingParams(**fields)
    except ValidationError as err:
        raise _BadRequest(format_validation_error(SamplingParams, err)) from None


class PolicyServer:
    """Serve ``policy`` over HTTP in background threads until :meth:`stop`.

    Args:
        policy: any :class:`~thor.agents.backends.base.Policy`.
        host: interface to bind; 127.0.0.1 by default (loopback only).
        port: port to bind; 0 picks a free one (see :attr:`port`).
        model_name: the name clients must send as ``model``; default ``policy.name``.
        max_batch: most requests generated in one call.
        batch_wait_s: how long the worker waits for more requests before generating.
    """

    def __init__(
        self,
        policy: Policy,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        model_name: str | None = None,
        max_batch: int = 64,
        batch_wait_s: float = 0.01,
    ) -> None:
        self.policy = policy
        self.model_name = model_name or policy.name
        try:
            self._httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        except OSError as err:
            raise PolicyError(f"cannot serve on {host}:{port}: {err}") from err
        self._batcher = _Batcher(policy, max_batch, batch_wait_s)
        self._httpd.daemon_threads = True
        address = self._httpd.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL for OpenAI clients, ending in ``/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> PolicyServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="thor-serve-http", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._batcher.stop()

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API ---------------------------------------------------------------------------------
    def models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": self.model_name, "object": "model", "created": 0, "owned_by": "thor"}],
        }

    def completions(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _BadRequest("the request body must be a JSON object")
        if body.get("model") not in (None, self.model_name):
            raise _BadRequest(
                f"The model `{body.get('model')}` does not exist; this server serves "
                f"`{self.model_name}`",
                status=404,
            )
        for key, default in _UNSUPPORTED.items():
            if body.get(key, default) not in (default, None):
                raise _BadRequest(f"thor serve does not support {key}={body[key]!r}")
        prompts = _parse_prompts(body.get("prompt"))
        params = _sampling_params(body)
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise _BadRequest("'seed' must be an integer")
        logprobs = body.get("logprobs")
        jobs = [
            _Job(p, params, (seed + i) if seed is not None else secrets.randbits(62))
            for i, p in enumerate(prompts)
        ]
        results = self._batcher.run(jobs)
        as_ids = bool(body.get("return_tokens_as_token_ids"))
        keep_stop = bool(body.get("include_stop_str_in_output"))
        choices = [
            self._choice(i, c, params, logprobs, as_ids, keep_stop) for i, c in enumerate(results)
        ]
        n_prompt = sum(
            len(p) if isinstance(p, list) else len(self.policy.encode(p)) for p in prompts
        )
        n_done = sum(len(c.token_ids) for c in results)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": n_prompt,
                "completion_tokens": n_done,
                "total_tokens": n_prompt + n_done,
            },
        }

    def _choice(
        self,
        index: int,
        c: Completion,
        params: SamplingParams,
        logprobs: Any,
        as_ids: bool,
        keep_stop: bool,
    ) -> dict[str, Any]:
        text = c.text
        stop_reason: str | None = None
        if c.finish_reason == "stop":
            hits = [(text.find(s), s) for s in params.stop if s and s in text]
            if hits:
                pos, stop_reason = min(hits)
                if not keep_stop:
                    text = text[:pos]
        choice: dict[str, Any] = {
            "index": index,
            "text": text,
            "finish_reason": "length" if c.finish_reason == "length" else "stop",
            "stop_reason": stop_reason,
            "logprobs": None,
        }
        if logprobs is not None:
            pieces = [self.policy.decode([t]) for t in c.token_ids]
            offsets = [sum(len(p) for p in pieces[:k]) for k in range(len(pieces))]
            choice["logprobs"] = {
                "tokens": [f"token_id:{t}" for t in c.token_ids] if as_ids else pieces,
                "token_logprobs": c.logprobs
                if c.logprobs is not None
                else [None] * len(c.token_ids),
                "top_logprobs": None,
                "text_offset": offsets,
            }
        return choice


def _make_handler(server: PolicyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "thor-serve"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s - %s", self.address_string(), format % args)

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            kind = {400: "BadRequestError", 404: "NotFoundError", 413: "BadRequestError"}.get(
                status, "InternalServerError"
            )
            self._send(status, {"error": {"message": message, "type": kind, "code": status}})

        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if path in ("/v1/models", "/models"):
                self._send(200, server.models())
            elif path in ("/health", "/v1/health"):
                self._send(200, {"status": "ok"})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if path not in ("/v1/completions", "/completions"):
                self._error(
                    404, f"no route {self.path}; thor serve offers /v1/completions and /v1/models"
                )
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                self._error(413, "request body too large")
                return
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                self._error(400, f"the request body is not JSON: {err}")
                return
            try:
                self._send(200, server.completions(body))
            except _BadRequest as err:
                self._error(err.status, str(err))
            except Exception as err:
                # a failed generation is the server's error: reported to the client, not raised
                self._error(500, f"{type(err).__name__}: {err}")

    return Handler


def serve_policy(
    policy: Policy,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    model_name: str | None = None,
    on_ready: Callable[[PolicyServer], None] | None = None,
    max_batch: int = 64,
    batch_wait_s: float = 0.01,
) -> None:
    """Serve ``policy`` in this thread until interrupted (Ctrl-C), then close the server.

    Args:
        on_ready: called once the socket is bound (e.g. to print the URL; ``port=0`` picks one).
    """
    server = PolicyServer(
        policy, host, port, model_name=model_name, max_batch=max_batch, batch_wait_s=batch_wait_s
    )
    if on_ready is not None:
        on_ready(server)
    try:
        server.serve_forever()
    finally:
        server._httpd.server_close()
        server._batcher.stop()
