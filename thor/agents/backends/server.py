"""An OpenAI-compatible server over any policy (``thor serve``).

Routes: ``GET /v1/models`` and ``/v1/models/{id}``, ``POST /v1/completions`` (prompt as text or
token ids, or a batch of either) and ``POST /v1/chat/completions`` (the messages rendered with the
policy's chat template), ``GET /health``. Both generation routes take ``max_tokens``,
``temperature``, ``top_p``, ``seed``, ``stop``, ``n``, ``stream`` (server-sent events ending in
``data: [DONE]``, with ``stream_options.include_usage``), logprobs with the top alternatives
(completions: ``logprobs=k``; chat: ``logprobs=true, top_logprobs=k``), and vLLM's ``top_k``,
``return_tokens_as_token_ids`` and ``include_stop_str_in_output``. Errors have OpenAI's shape
(:func:`~thor.agents.backends.openai_api.openai_error`). Streamed responses are sent once their
completions are generated (the policy generates whole completions), one event per token.

It binds to 127.0.0.1 unless told otherwise; any other address needs a bearer token (the rule of
``thor sandbox serve`` too: :func:`thor.serving.check_bind`). Connections are served by a bounded
pool of threads with read, idle and write deadlines (:class:`thor.serving.ServerLimits`).
Concurrent requests are batched: a worker thread collects the requests that arrive within
``batch_wait_s`` and generates them in one call (requests with different seeds share a batch when
the policy accepts per-row seeds, as HF and scripted ones do). Requests are checked completely
before they join a batch; should a batch still fail, its requests are retried one by one, so a
bad request never fails its neighbours.

Example:
    >>> from thor.agents.backends.server import PolicyServer
    >>> from thor.testing import ScriptedPolicy
    >>> with PolicyServer(ScriptedPolicy(lambda p: "4"), port=0, model_name="toy") as server:
    ...     server.url.startswith("http://127.0.0.1:")
    True
"""

from __future__ import annotations

import inspect
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thor.agents.backends.base import Policy, Prompt
from thor.agents.backends.openai_api import (
    ApiRequest,
    Generated,
    ModelInfo,
    openai_error,
    parse_chat,
    parse_completion,
    response,
    stream_chunks,
)
from thor.agents.backends.toplogprobs import Scorer, scorer_of
from thor.errors import PolicyError
from thor.serving import (
    BoundedHTTPServer,
    JSONRequestHandler,
    RequestError,
    ServerLimits,
    bearer_matches,
    check_bind,
)
from thor.types import SamplingParams

__all__ = ["PolicyServer", "serve_policy"]

log = logging.getLogger(__name__)

_MAX_BODY = 64 << 20


@dataclass
class _Job:
    prompt: Prompt
    params: SamplingParams
    seed: int
    top_k: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    result: Generated | None = None
    error: Exception | None = None


class _Batcher:
    """One worker thread: collect jobs for ``wait_s``, group compatible ones, generate each group."""

    def __init__(
        self, policy: Policy, max_batch: int, wait_s: float, scorer: Scorer | None
    ) -> None:
        self.policy = policy
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.scorer = scorer
        self._row_seeds = "row_seeds" in inspect.signature(policy.generate).parameters
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="thor-serve-batcher", daemon=True)
        self._thread.start()

    def run(self, jobs: list[_Job]) -> list[Generated]:
        for job in jobs:
            self._queue.put(job)
        out: list[Generated] = []
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
            self._try(group)
        except Exception as err:
            if len(group) > 1:  # find the request at fault: the others must not fail with it
                log.warning(
                    "a batch of %d failed (%s); generating its requests one by one", len(group), err
                )
                for job in group:
                    self._generate([job])
                return
            log.exception("generation failed")
            group[0].error = err
        finally:
            for job in group:
                job.done.set()

    def _try(self, group: list[_Job]) -> None:
        prompts = [j.prompt for j in group]
        if self._row_seeds:
            params = group[0].params.model_copy(update={"seed": None})
            results = self.policy.generate(prompts, params, row_seeds=[j.seed for j in group])  # type: ignore[call-arg]
        else:
            params = group[0].params.model_copy(update={"seed": group[0].seed})
            results = self.policy.generate(prompts, params)
        if len(results) != len(group):
            raise PolicyError(f"{len(group)} prompts but {len(results)} completions")
        tops: dict[int, list[list[tuple[int, float]]]] = {}
        k = max(j.top_k for j in group)
        if k > 0 and self.scorer is not None:
            rows = [i for i, j in enumerate(group) if j.top_k > 0]
            ids = [self._ids(group[i].prompt) for i in rows]
            scored = self.scorer(ids, [results[i].token_ids for i in rows], k, params.temperature)
            tops = {i: [r[: group[i].top_k] for r in s] for i, s in zip(rows, scored, strict=True)}
        for i, (job, res) in enumerate(zip(group, results, strict=True)):
            job.result = Generated(
                res, tops.get(i, [[] for _ in res.token_ids]) if job.top_k else None
            )

    def _ids(self, prompt: Prompt) -> list[int]:
        return self.policy.encode(prompt) if isinstance(prompt, str) else prompt


def _vocab_size(policy: Policy) -> int | None:
    """The number of valid token ids (the smaller of the tokenizer's and the model's)."""
    sizes: list[int] = []
    tokenizer = getattr(policy, "tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "__len__"):
        sizes.append(len(tokenizer))
    model = getattr(policy, "model", None)
    embeddings = getattr(model, "get_input_embeddings", None)
    if callable(embeddings):
        rows = getattr(embeddings(), "num_embeddings", None)
        if isinstance(rows, int):
            sizes.append(rows)
    return min(sizes) if sizes else None


class PolicyServer:
    """Serve ``policy`` over HTTP in background threads until :meth:`stop`.

    Args:
        policy: any :class:`~thor.agents.backends.base.Policy`.
        host: interface to bind; 127.0.0.1 by default (loopback only).
        port: port to bind; 0 picks a free one (see :attr:`port`).
        model_name: the name clients must send as ``model``; default ``policy.name``.
        max_batch: most requests generated in one call.
        batch_wait_s: how long the worker waits for more requests before generating.
        token: bearer token clients must send (required to bind anything but loopback).
        limits: worker threads, listen backlog and client timeouts.

    Raises:
        ConfigError: a non-loopback host without a token, or the port cannot be bound.
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
        token: str | None = None,
        limits: ServerLimits | None = None,
    ) -> None:
        check_bind(host, token, "the model")
        if max_batch < 1 or batch_wait_s < 0:
            raise PolicyError(
                f"max_batch must be >= 1 and batch_wait_s >= 0, got {max_batch}, {batch_wait_s}"
            )
        self.policy = policy
        self.token = token
        self.model = ModelInfo(
            name=model_name or policy.name,
            vocab_size=_vocab_size(policy),
            encode=policy.encode,
            decode=policy.decode,
            chat_template=policy.apply_chat_template,
        )
        self.model_name = self.model.name
        handler = type("Handler", (_Handler,), {"server_ref": self})
        try:
            self._httpd = BoundedHTTPServer(
                (host, port), handler, limits or ServerLimits(workers=256)
            )
        except OSError as err:
            raise PolicyError(f"cannot serve on {host}:{port}: {err}") from err
        self._batcher = _Batcher(policy, max_batch, batch_wait_s, scorer_of(policy))
        address = self._httpd.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL for OpenAI clients, ending in ``/v1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

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
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=30)
            self._thread = None
        self._httpd.server_close()
        self._batcher.stop()

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API ---------------------------------------------------------------------------------
    def model_card(self) -> dict[str, Any]:
        return {"id": self.model_name, "object": "model", "created": 0, "owned_by": "thor"}

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [self.model_card()]}

    def generate(self, req: ApiRequest) -> list[Generated]:
        """Generate every choice of a checked request (prompt ``i``, sample ``j``: row ``i*n+j``)."""
        if req.logprobs and self._batcher.scorer is None:
            raise RequestError(
                f"the {type(self.policy).__name__} backend reports only the sampled tokens' "
                "logprobs: ask for 0 alternatives (logprobs=0, or top_logprobs=0)",
                param="top_logprobs" if req.chat else "logprobs",
                code="unsupported",
            )
        rows = [p for p in req.prompts for _ in range(req.n)]
        base = req.seed
        jobs = [
            _Job(
                p,
                req.params,
                (base + i) if base is not None else secrets.randbits(62),
                req.logprobs or 0,
            )
            for i, p in enumerate(rows)
        ]
        return self._batcher.run(jobs)

    def respond(self, kind: str, body: Any) -> tuple[ApiRequest, list[Generated]]:
        req = parse_chat(body, self.model) if kind == "chat" else parse_completion(body, self.model)
        return req, self.generate(req)

    def completions(self, body: Any) -> dict[str, Any]:
        """A ``/v1/completions`` response (not streamed) for ``body``."""
        req, results = self.respond("completion", body)
        return response(req, results, self.model)


_POST_ROUTES = {
    "/v1/completions": "completion",
    "/completions": "completion",
    "/v1/chat/completions": "chat",
    "/chat/completions": "chat",
}


class _Handler(JSONRequestHandler):
    server_version = "thor-serve"
    server_ref: PolicyServer

    def error_body(self, err: RequestError) -> Any:
        return openai_error(err)

    def _authorize(self) -> None:
        if not bearer_matches(self.headers.get("Authorization"), self.server_ref.token):
            raise RequestError(
                "missing or wrong API key (Authorization: Bearer ...)", 401, code="invalid_api_key"
            )

    def do_GET(self) -> None:
        srv = self.server_ref
        path = self.path.split("?")[0].rstrip("/")
        if path in ("/health", "/v1/health"):
            self.send_json(200, {"status": "ok"})
            return
        self._authorize()
        if path in ("/v1/models", "/models"):
            self.send_json(200, srv.models())
        elif path.startswith(("/v1/models/", "/models/")):
            name = path.split("/models/", 1)[1]
            if name != srv.model_name:
                raise RequestError(
                    f"The model `{name}` does not exist", 404, param="model", code="model_not_found"
                )
            self.send_json(200, srv.model_card())
        else:
            raise RequestError(f"Invalid URL (GET {self.path[:200]})", 404)

    def do_POST(self) -> None:
        srv = self.server_ref
        kind = _POST_ROUTES.get(self.path.split("?")[0].rstrip("/"))
        if kind is None:
            raise RequestError(
                f"Invalid URL (POST {self.path[:200]}): thor serve offers /v1/completions, "
                "/v1/chat/completions and /v1/models",
                404,
            )
        self._authorize()
        body = self.read_json(_MAX_BODY)
        req, results = srv.respond(kind, body)
        if req.stream:
            self.send_events(lambda: stream_chunks(req, results, srv.model))
        else:
            self.send_json(200, response(req, results, srv.model))


def serve_policy(
    policy: Policy,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    model_name: str | None = None,
    on_ready: Callable[[PolicyServer], None] | None = None,
    max_batch: int = 64,
    batch_wait_s: float = 0.01,
    token: str | None = None,
    limits: ServerLimits | None = None,
) -> None:
    """Serve ``policy`` in this thread until interrupted (Ctrl-C), then close the server.

    Args:
        on_ready: called once the socket is bound (e.g. to print the URL; ``port=0`` picks one).
    """
    server = PolicyServer(
        policy,
        host,
        port,
        model_name=model_name,
        max_batch=max_batch,
        batch_wait_s=batch_wait_s,
        token=token,
        limits=limits,
    )
    if on_ready is not None:
        on_ready(server)
    try:
        server.serve_forever()
    finally:
        server.stop()
