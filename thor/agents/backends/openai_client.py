"""A policy served over HTTP by any OpenAI-compatible server (vLLM, SGLang, llama.cpp, TGI, ``thor serve``).

It uses the *completions* API (``/v1/completions``) on raw prompts, never the chat API, so the text
the model continues is exactly thor's. Each prompt is one request; a batch is sent concurrently
from a thread pool. Token ids and logprobs come from the response where the server provides them
(vLLM and ``thor serve``: ``return_tokens_as_token_ids``, ``logprobs``); otherwise the text is
re-encoded with the local tokenizer, the ids may then differ from what the server sampled, and
logprobs are ``None``.

Stopping: servers only know stop strings, so the request carries ``params.stop`` plus
:data:`thor.text.protocol.CODE_STOP_STRINGS`, and the code-close rule is applied on the client with
the same :class:`~thor.agents.backends.base.StopChecker` every backend uses.

Logprobs are whatever the server reports. ``thor serve`` reports thor's (the temperature-scaled
distribution before truncation); start vLLM with ``--logprobs-mode processed_logprobs`` to get the
same when top-p is 1 and top-k is off (its default, ``raw_logprobs``, ignores the temperature).

A local tokenizer is required (``encode``/``decode`` and the stop rules need one): ``tokenizer=``
a local Hugging Face directory or GGUF file, or nothing when the served model is ``"embedded"`` or
a local path.

Failures: connection errors, timeouts, 429 and 5xx are retried with exponential backoff; a server
that stays down raises :class:`~thor.errors.PolicyError` (no completion is invented), as do a 4xx
answer, a body that is not JSON and a JSON of the wrong shape, each with a message naming what was
wrong.

Example:
    >>> from thor.agents.backends.openai_client import OpenAIPolicy, OpenAIPolicyConfig
    >>> cfg = OpenAIPolicyConfig(base_url="http://127.0.0.1:8000/v1", model="embedded")
    >>> policy = OpenAIPolicy(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr

from thor.agents.backends.base import (
    HFTokenizerText,
    Prompt,
    apply_stops,
    check_prompts,
    make_completion,
)
from thor.agents.backends.embedded import is_embedded
from thor.config import ThorConfig
from thor.errors import PolicyError
from thor.text.protocol import CODE_STOP_STRINGS
from thor.types import Completion, FinishReason, SamplingParams

__all__ = ["OpenAIPolicy", "OpenAIPolicyConfig"]

log = logging.getLogger(__name__)

_TOKEN_ID = re.compile(r"^token_id:(\d+)$")
_RETRYABLE_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})


class OpenAIPolicyConfig(ThorConfig):
    """Where the server is and how to talk to it."""

    base_url: str = Field(description="URL up to and including /v1, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(
        description="The model name the server serves (vLLM: the path it was started with)"
    )
    api_key: SecretStr | None = None
    tokenizer: str | None = Field(
        None,
        description="Local tokenizer: 'embedded', an HF directory or a .gguf; default: from `model`",
    )
    vllm_extensions: bool = Field(
        True,
        description="Send vLLM's extra fields (return_tokens_as_token_ids, include_stop_str_in_output, "
        "top_k, add_special_tokens) and token-id prompts; turn off for servers that reject them",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Extra request fields, sent as is"
    )
    concurrency: int = Field(8, ge=1, description="Requests in flight at once")
    timeout_s: float = Field(600.0, gt=0, description="Per request")
    max_retries: int = Field(
        5, ge=0, description="Retries of a request after connection errors, 429 and 5xx"
    )
    backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles each retry")
    max_backoff_s: float = Field(8.0, ge=0)
    name: str | None = None


class _Retryable(Exception):
    """A failure worth retrying (connection refused or reset, timeout, 429, 5xx)."""


class OpenAIPolicy(HFTokenizerText):
    """A :class:`~thor.agents.backends.base.Policy` over an OpenAI-compatible completions server.

    Args:
        config: the server and client settings (or their fields as keyword arguments).

    Raises:
        PolicyError: no local tokenizer can be found for the model.

    Example:
        >>> policy = OpenAIPolicy(base_url="http://127.0.0.1:8000/v1", model="embedded")  # doctest: +SKIP
        >>> policy.generate(["2 + 2 ="], SamplingParams(max_tokens=4))  # doctest: +SKIP
    """

    def __init__(self, config: OpenAIPolicyConfig | None = None, /, **kwargs: Any) -> None:
        if config is not None and kwargs:
            raise TypeError("pass an OpenAIPolicyConfig or keyword arguments, not both")
        self.config = cfg = config if config is not None else OpenAIPolicyConfig(**kwargs)
        self.name = cfg.name or cfg.model
        self._url = cfg.base_url.rstrip("/")
        self.tokenizer = _load_tokenizer(cfg)
        self._fast = getattr(self.tokenizer, "backend_tokenizer", None)
        eos = getattr(self.tokenizer, "eos_token_id", None)
        self.eos_token_ids: frozenset[int] = frozenset({int(eos)} if eos is not None else set())
        self._pool = ThreadPoolExecutor(cfg.concurrency, thread_name_prefix="thor-openai")
        self._closed = False
        self._warned_reencode = False

    # -- generation ---------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        """One request per prompt, ``concurrency`` at a time; row ``i`` is seeded ``params.seed + i``.

        Raises:
            PolicyError: the server stayed unreachable, refused a request, or answered garbage.
        """
        if self._closed:
            raise PolicyError(f"{self.name}: generate() after close()")
        checked = check_prompts(prompts)
        futures = [self._pool.submit(self._complete, i, p, params) for i, p in enumerate(checked)]
        results: list[Completion] = []
        try:
            for f in futures:
                results.append(f.result())
        finally:
            if len(results) < len(futures):  # a request failed: drop the ones not started yet
                for f in futures:
                    f.cancel()
        return results

    def _complete(self, row: int, prompt: Prompt, params: SamplingParams) -> Completion:
        body = self._request_body(row, prompt, params)
        data = self._post("/completions", body)
        return self._parse(data, params)

    def _request_body(self, row: int, prompt: Prompt, params: SamplingParams) -> dict[str, Any]:
        cfg = self.config
        stops = list(
            dict.fromkeys([*params.stop, *(CODE_STOP_STRINGS if params.stop_at_code_close else ())])
        )
        body: dict[str, Any] = {
            "model": cfg.model,
            "prompt": prompt
            if isinstance(prompt, str) or cfg.vllm_extensions
            else self.decode(prompt),
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "logprobs": 0,  # the sampled tokens' logprobs, no alternatives (OpenAI, vLLM)
            "n": 1,
            "stream": False,
        }
        if stops:
            body["stop"] = stops
        if params.seed is not None:
            body["seed"] = params.seed + row
        if cfg.vllm_extensions:
            body.update(
                return_tokens_as_token_ids=True,
                include_stop_str_in_output=True,
                skip_special_tokens=False,
            )
            if isinstance(prompt, str):
                body["add_special_tokens"] = False
            if params.top_k > 0:
                body["top_k"] = params.top_k
        elif params.top_k > 0:
            raise PolicyError("top_k needs vllm_extensions=True (the OpenAI API has no top_k)")
        body.update(cfg.extra_body)
        return body

    def _parse(self, data: Any, params: SamplingParams) -> Completion:
        choice = _first_choice(data, self._url)
        text = choice.get("text")
        if not isinstance(text, str):
            raise PolicyError(
                f"{self._url}: choices[0].text is {type(text).__name__}, not a string"
            )
        ids, logprobs = self._tokens(choice, text)
        kept, reason = apply_stops(ids, self.decode, params, self.eos_token_ids)
        if reason is None:
            reason = _server_reason(choice)
        return make_completion(kept, self.decode, reason, logprobs)

    def _tokens(self, choice: dict[str, Any], text: str) -> tuple[list[int], list[float] | None]:
        lp = choice.get("logprobs")
        lp = lp if isinstance(lp, dict) else {}
        tokens = lp.get("tokens")
        if isinstance(tokens, list) and tokens:
            matches = [_TOKEN_ID.match(t) if isinstance(t, str) else None for t in tokens]
            if all(matches):
                ids = [int(m.group(1)) for m in matches if m]
                values = lp.get("token_logprobs")
                if not isinstance(values, list) or len(values) != len(ids):
                    raise PolicyError(
                        f"{self._url}: logprobs.token_logprobs does not match the {len(ids)} tokens"
                    )
                if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                    raise PolicyError(
                        f"{self._url}: logprobs.token_logprobs holds non-numbers: {values[:5]}"
                    )
                return ids, [float(v) for v in values]
        elif isinstance(tokens, list) and not tokens and not text:
            return [], []
        if not self._warned_reencode:
            log.warning(
                "%s: the server returned no token ids; re-encoding its text locally "
                "(ids may differ from what it sampled; no logprobs)",
                self._url,
            )
            self._warned_reencode = True
        return self.encode(text), None

    # -- HTTP -----------------------------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any]) -> Any:
        cfg = self.config
        last: Exception | None = None
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                time.sleep(min(cfg.backoff_s * 2 ** (attempt - 1), cfg.max_backoff_s))
            try:
                return self._post_once(path, body)
            except _Retryable as err:
                last = err
                log.info(
                    "%s%s: %s (attempt %d of %d)",
                    self._url,
                    path,
                    err,
                    attempt + 1,
                    cfg.max_retries + 1,
                )
        raise PolicyError(
            f"the server at {self._url} failed {cfg.max_retries + 1} times in a row; last error: {last}. "
            "Is it running? (no completion was invented)"
        )

    def _post_once(self, path: str, body: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.config.api_key is not None:
            headers["Authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        req = urllib.request.Request(
            self._url + path, json.dumps(body).encode(), headers, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=self.config.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            detail = _error_detail(err)
            if err.code in _RETRYABLE_HTTP:
                raise _Retryable(f"HTTP {err.code}: {detail}") from err
            raise PolicyError(
                f"{self._url}{path} refused the request: HTTP {err.code}: {detail}"
            ) from err
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            ConnectionError,
            TimeoutError,
        ) as err:
            raise _Retryable(f"{type(err).__name__}: {getattr(err, 'reason', err)}") from err
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise PolicyError(
                f"{self._url}{path} answered with something that is not JSON: {raw[:200]!r}"
            ) from err

    def close(self) -> None:
        """Stop the request threads (idempotent)."""
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=False, cancel_futures=True)

    def __repr__(self) -> str:
        return f"OpenAIPolicy({self.name!r} at {self._url})"


def _load_tokenizer(cfg: OpenAIPolicyConfig) -> Any:
    from thor.agents.backends.hf import load_hf_tokenizer

    source = cfg.tokenizer
    if source is None and (is_embedded(cfg.model) or Path(cfg.model).expanduser().exists()):
        source = cfg.model
    if source is None:
        raise PolicyError(
            f"OpenAIPolicy needs a local tokenizer for model {cfg.model!r}: set tokenizer= to its Hugging "
            "Face directory (or 'embedded'), so that token ids, decode() and the stop rules are exact"
        )
    return load_hf_tokenizer(source)


def _first_choice(data: Any, url: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PolicyError(
            f"{url}: expected a JSON object, got {type(data).__name__}: {str(data)[:200]}"
        )
    if "error" in data and "choices" not in data:
        raise PolicyError(f"{url}: the server reported an error: {str(data['error'])[:300]}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise PolicyError(
            f"{url}: the response has no 'choices' list of objects: {json.dumps(data)[:200]}"
        )
    return choices[0]


def _server_reason(choice: dict[str, Any]) -> FinishReason:
    """The finish reason when no client-side rule fired: the server's own ``length`` or ``stop``."""
    finish = choice.get("finish_reason")
    if finish == "length":
        return "length"
    if finish == "stop" and isinstance(choice.get("stop_reason"), str):
        return "stop"
    return "eos"


def _error_detail(err: urllib.error.HTTPError) -> str:
    try:
        raw = err.read()[:500].decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return str(err.reason)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return raw or str(err.reason)
    if isinstance(data, dict):
        e = data.get("error", data)
        return str(e.get("message", e) if isinstance(e, dict) else e)[:300]
    return raw
