"""The OpenAI API's shapes for ``thor serve``: requests checked into jobs, results into responses.

Everything a request can get wrong is found here, before any generation, and answered with a
:class:`~thor.serving.RequestError` naming the field (``param``): so one bad request never reaches
the batch it would share with good ones. Prompts given as token ids must lie inside the
vocabulary; text prompts must encode to at least one token.

Shapes follow OpenAI's and vLLM's: ``/v1/completions`` (``text_completion``, logprobs as
``tokens`` / ``token_logprobs`` / ``top_logprobs`` / ``text_offset``), ``/v1/chat/completions``
(``chat.completion``, logprobs as ``content: [{token, logprob, bytes, top_logprobs}]``), their
streamed chunks (``text_completion`` and ``chat.completion.chunk``), and errors as
``{"error": {"message", "type", "param", "code"}}``.

Example:
    >>> err = openai_error(RequestError("bad", param="n"))
    >>> err["error"]["type"], err["error"]["param"]
    ('invalid_request_error', 'n')
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from thor.agents.backends.base import IncrementalDecoder, Prompt
from thor.config import format_validation_error
from thor.serving import RequestError
from thor.types import Completion, SamplingParams

__all__ = [
    "MAX_TOP_LOGPROBS",
    "ApiRequest",
    "Generated",
    "ModelInfo",
    "openai_error",
    "parse_chat",
    "parse_completion",
    "response",
    "stream_chunks",
]

MAX_TOP_LOGPROBS = 20
"""The most alternatives per token (vLLM's default ``max_logprobs``)."""
MAX_N = 128
MAX_ROWS = 1024
"""Most completions one request may ask for (prompts x n)."""
MAX_STOPS = 16

_UNSUPPORTED: dict[str, Any] = {
    "echo": False,
    "suffix": None,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logit_bias": None,
    "tools": None,
    "functions": None,
}


@dataclass
class ModelInfo:
    """What the parser needs from the served policy."""

    name: str
    vocab_size: int | None
    encode: Callable[[str], list[int]]
    decode: Callable[[Sequence[int]], str]
    chat_template: Callable[[list[dict[str, str]]], str]


@dataclass
class ApiRequest:
    """One checked request: ``prompts`` each sampled ``n`` times with ``params``."""

    chat: bool
    prompts: list[Prompt]
    prompt_tokens: list[int]
    n: int
    params: SamplingParams
    seed: int | None
    logprobs: int | None
    """None: no logprobs; k: the sampled token's and the k most likely ones'."""
    stream: bool = False
    include_usage: bool = False
    as_ids: bool = False
    keep_stop: bool = False
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Generated:
    """One completion and, when asked, the top alternatives at each of its tokens."""

    completion: Completion
    top: list[list[tuple[int, float]]] | None = None


def openai_error(err: RequestError) -> dict[str, Any]:
    """OpenAI's error body for ``err``."""
    kind = "invalid_request_error" if err.status < 500 else "server_error"
    return {"error": {"message": err.message, "type": kind, "param": err.param, "code": err.code}}


# -- checking requests ------------------------------------------------------------------------
def _get_int(body: dict[str, Any], name: str, default: int | None, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise RequestError(
            f"'{name}' must be an integer in [{lo}, {hi}], got {value!r}", param=name
        )
    return value


def _get_bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(f"'{name}' must be true or false, got {value!r}", param=name)
    return value


def _get_number(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise RequestError(f"'{name}' must be a number, got {value!r}", param=name)
    return float(value)


def _stops(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if (
        not isinstance(stops, list)
        or len(stops) > MAX_STOPS
        or not all(isinstance(s, str) and 0 < len(s) <= 1000 for s in stops)
    ):
        raise RequestError(
            f"'stop' must be a string or a list of at most {MAX_STOPS} non-empty strings",
            param="stop",
        )
    return stops


def _sampling(body: dict[str, Any], max_tokens_names: Sequence[str]) -> SamplingParams:
    max_tokens: int | None = None
    for name in max_tokens_names:
        max_tokens = _get_int(body, name, max_tokens, 1, 1 << 30)
    top_k = _get_int(body, "top_k", 0, -1, 1 << 30)
    fields = {
        "max_tokens": max_tokens if max_tokens is not None else 16,
        "temperature": _get_number(body, "temperature", 1.0),
        "top_p": _get_number(body, "top_p", 1.0),
        "top_k": 0 if top_k == -1 else top_k,
        "stop": _stops(body),
    }
    try:
        return SamplingParams(**fields)
    except ValidationError as err:
        param = str(err.errors()[0]["loc"][0]) if err.errors() else None
        raise RequestError(format_validation_error(SamplingParams, err), param=param) from None


def _check_common(body: Any, model: ModelInfo) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    if body.get("model") not in (None, model.name):
        raise RequestError(
            f"The model `{body.get('model')}` does not exist; this server serves `{model.name}`",
            404,
            param="model",
            code="model_not_found",
        )
    for key, default in _UNSUPPORTED.items():
        if body.get(key) not in (default, None, [], {}):
            raise RequestError(
                f"thor serve does not support {key}={body[key]!r}", param=key, code="unsupported"
            )
    fmt = body.get("response_format")
    if fmt is not None and fmt != {"type": "text"}:
        raise RequestError(
            "only response_format {'type': 'text'} is supported", param="response_format"
        )
    return body


def _check_ids(ids: list[Any], vocab: int | None, where: str) -> list[int]:
    if not ids:
        raise RequestError(f"{where} is an empty list of token ids", param="prompt")
    for t in ids:
        if not isinstance(t, int) or isinstance(t, bool):
            raise RequestError(f"{where} holds {t!r}, not a token id", param="prompt")
        if t < 0 or (vocab is not None and t >= vocab):
            top = f"[0, {vocab})" if vocab is not None else "non-negative"
            raise RequestError(
                f"{where} holds token id {t}, outside the vocabulary {top}", param="prompt"
            )
    return list(ids)


def _prompts(raw: Any, model: ModelInfo) -> tuple[list[Prompt], list[int]]:
    if isinstance(raw, str) or (
        isinstance(raw, list) and raw and not isinstance(raw[0], str | list)
    ):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise RequestError(
            "'prompt' must be a string, a list of token ids, or a non-empty list of either",
            param="prompt",
        )
    prompts: list[Prompt] = []
    counts: list[int] = []
    for i, p in enumerate(raw):
        if isinstance(p, str):
            n = len(model.encode(p))
            if n == 0:
                raise RequestError(
                    f"prompt {i} is empty: the model needs a token to continue", param="prompt"
                )
            prompts.append(p)
            counts.append(n)
        elif isinstance(p, list):
            prompts.append(_check_ids(p, model.vocab_size, f"prompt {i}"))
            counts.append(len(p))
        else:
            raise RequestError(
                f"prompt {i} must be a string or a list of token ids", param="prompt"
            )
    return prompts, counts


def _rows(body: dict[str, Any], prompts: int) -> int:
    n = _get_int(body, "n", 1, 1, MAX_N) or 1
    best_of = body.get("best_of")
    if best_of is not None and best_of != n:
        raise RequestError(
            "best_of must equal n (thor serve returns every sample)", param="best_of"
        )
    if prompts * n > MAX_ROWS:
        raise RequestError(f"{prompts} prompts x n={n} is over {MAX_ROWS} completions", param="n")
    return n


def _stream(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = _get_bool(body, "stream")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict) or not stream):
        raise RequestError(
            "stream_options needs stream=true and must be an object", param="stream_options"
        )
    return stream, _get_bool(options or {}, "include_usage")


def parse_completion(body: Any, model: ModelInfo) -> ApiRequest:
    """Check a ``/v1/completions`` body.

    Raises:
        RequestError: the first thing wrong with it (the field is the error's ``param``).
    """
    body = _check_common(body, model)
    prompts, counts = _prompts(body.get("prompt"), model)
    n = _rows(body, len(prompts))
    stream, usage = _stream(body)
    return ApiRequest(
        chat=False,
        prompts=prompts,
        prompt_tokens=counts,
        n=n,
        params=_sampling(body, ["max_tokens"]),
        seed=_get_int(body, "seed", None, -(1 << 63), (1 << 64) - 1),
        logprobs=_get_int(body, "logprobs", None, 0, MAX_TOP_LOGPROBS),
        stream=stream,
        include_usage=usage,
        as_ids=_get_bool(body, "return_tokens_as_token_ids"),
        keep_stop=_get_bool(body, "include_stop_str_in_output"),
    )


def _message_text(message: Any, i: int) -> dict[str, str]:
    if not isinstance(message, dict) or message.get("role") not in (
        "system",
        "user",
        "assistant",
        "developer",
    ):
        raise RequestError(
            f"messages[{i}] must be an object with a role of system, user or assistant",
            param="messages",
        )
    content = message.get("content")
    if isinstance(content, list):  # content parts: only text is understood
        if not all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in content
        ):
            raise RequestError(f"messages[{i}].content may hold text parts only", param="messages")
        content = "".join(p["text"] for p in content)
    if not isinstance(content, str):
        raise RequestError(f"messages[{i}].content must be a string", param="messages")
    role = "system" if message["role"] == "developer" else message["role"]
    return {"role": role, "content": content}


def parse_chat(body: Any, model: ModelInfo) -> ApiRequest:
    """Check a ``/v1/chat/completions`` body and render its messages with the chat template.

    Raises:
        RequestError: the first thing wrong with it.
    """
    body = _check_common(body, model)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list", param="messages")
    try:
        prompt = model.chat_template([_message_text(m, i) for i, m in enumerate(messages)])
    except RequestError:
        raise
    except Exception as err:  # a template that refuses these messages (roles, order)
        raise RequestError(
            f"the chat template refused the messages: {err}", param="messages"
        ) from None
    top = _get_int(body, "top_logprobs", None, 0, MAX_TOP_LOGPROBS)
    want = _get_bool(body, "logprobs")
    if top is not None and not want:
        raise RequestError("top_logprobs needs logprobs=true", param="top_logprobs")
    stream, usage = _stream(body)
    prompts, counts = _prompts(prompt, model)
    return ApiRequest(
        chat=True,
        prompts=prompts,
        prompt_tokens=counts,
        n=_rows(body, 1),
        params=_sampling(body, ["max_tokens", "max_completion_tokens"]),
        seed=_get_int(body, "seed", None, -(1 << 63), (1 << 64) - 1),
        logprobs=(top or 0) if want else None,
        stream=stream,
        include_usage=usage,
        keep_stop=_get_bool(body, "include_stop_str_in_output"),
    )


# -- shaping responses ----------------------------------------------------------------------------
@dataclass
class _Choice:
    index: int
    text: str
    finish_reason: str
    stop_reason: str | None
    tokens: list[int]
    logprobs: list[float | None]
    top: list[list[tuple[int, float]]] | None


def _choice(index: int, gen: Generated, req: ApiRequest) -> _Choice:
    c = gen.completion
    text, stop_reason = c.text, None
    if c.finish_reason == "stop":
        hits = [(text.find(s), s) for s in req.params.stop if s in text]
        if hits:
            pos, stop_reason = min(hits)
            if not req.keep_stop:
                text = text[:pos]
    values: list[float | None] = (
        list(c.logprobs) if c.logprobs is not None else [None] * len(c.token_ids)
    )
    return _Choice(
        index,
        text,
        "length" if c.finish_reason == "length" else "stop",
        stop_reason,
        list(c.token_ids),
        values,
        gen.top,
    )


def _usage(req: ApiRequest, choices: Sequence[_Choice]) -> dict[str, int]:
    prompt = sum(req.prompt_tokens)
    done = sum(len(c.tokens) for c in choices)
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


class _Shaper:
    """Token strings and logprob entries for one response."""

    def __init__(self, req: ApiRequest, decode: Callable[[Sequence[int]], str]) -> None:
        self.req, self.decode = req, decode

    def token(self, t: int) -> str:
        return f"token_id:{t}" if self.req.as_ids else self.decode([t])

    def completion_logprobs(self, c: _Choice, start: int, end: int, offset: int) -> dict[str, Any]:
        pieces = [self.token(t) for t in c.tokens[start:end]]
        offsets, at = [], offset
        for p in pieces:
            offsets.append(at)
            at += len(p)
        top = None
        if c.top is not None:
            top = [{self.token(t): lp for t, lp in row} for row in c.top[start:end]]
        return {
            "tokens": pieces,
            "token_logprobs": c.logprobs[start:end],
            "top_logprobs": top,
            "text_offset": offsets,
        }

    def _entry(self, t: int, lp: float | None) -> dict[str, Any]:
        s = self.decode([t])
        return {"token": s, "logprob": lp, "bytes": list(s.encode("utf-8", "replace"))}

    def chat_logprobs(self, c: _Choice, start: int, end: int) -> dict[str, Any]:
        content = []
        for k in range(start, end):
            entry = self._entry(c.tokens[k], c.logprobs[k])
            rows = c.top[k] if c.top is not None else []
            entry["top_logprobs"] = [self._entry(t, lp) for t, lp in rows]
            content.append(entry)
        return {"content": content, "refusal": None}

    def logprobs(self, c: _Choice, start: int, end: int, offset: int) -> dict[str, Any] | None:
        if self.req.logprobs is None:
            return None
        if self.req.chat:
            return self.chat_logprobs(c, start, end)
        return self.completion_logprobs(c, start, end, offset)


def _choices(req: ApiRequest, results: Sequence[Generated]) -> list[_Choice]:
    return [_choice(i, g, req) for i, g in enumerate(results)]


def response(req: ApiRequest, results: Sequence[Generated], model: ModelInfo) -> dict[str, Any]:
    """The ``text_completion`` or ``chat.completion`` object (choice ``i * n + j``: prompt ``i``,
    sample ``j``)."""
    shaper, choices = _Shaper(req, model.decode), _choices(req, results)
    out = []
    for c in choices:
        body: dict[str, Any] = (
            {"message": {"role": "assistant", "content": c.text}} if req.chat else {"text": c.text}
        )
        out.append(
            {
                "index": c.index,
                **body,
                "logprobs": shaper.logprobs(c, 0, len(c.tokens), 0),
                "finish_reason": c.finish_reason,
                "stop_reason": c.stop_reason,
            }
        )
    return {
        "id": f"{'chatcmpl' if req.chat else 'cmpl'}-{req.id}",
        "object": "chat.completion" if req.chat else "text_completion",
        "created": req.created,
        "model": model.name,
        "choices": out,
        "usage": _usage(req, choices),
    }


def _pieces(c: _Choice, decode: Callable[[Sequence[int]], str]) -> list[str]:
    """The text each token adds (held back across split characters), cut to the choice's text."""
    inc = IncrementalDecoder(decode)
    pieces = [inc.push(t) for t in c.tokens]
    if pieces:
        pieces[-1] += inc.flush()
    out, used = [], 0
    for p in pieces:
        keep = p[: max(0, len(c.text) - used)]
        out.append(keep)
        used += len(keep)
    if used < len(c.text):  # text the token pieces do not account for
        out.append(c.text[used:])
    return out


def stream_chunks(
    req: ApiRequest, results: Sequence[Generated], model: ModelInfo
) -> Iterator[dict[str, Any]]:
    """The streamed chunks of a response: one per token per choice, then each choice's finish."""
    shaper, choices = _Shaper(req, model.decode), _choices(req, results)
    head = {
        "id": f"{'chatcmpl' if req.chat else 'cmpl'}-{req.id}",
        "object": "chat.completion.chunk" if req.chat else "text_completion",
        "created": req.created,
        "model": model.name,
    }
    extra = {"usage": None} if req.include_usage else {}

    def chunk(index: int, body: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": index, **body, "finish_reason": finish}
        return {**head, "choices": [choice], **extra}

    for c in choices:
        if req.chat:
            yield chunk(c.index, {"delta": {"role": "assistant", "content": ""}, "logprobs": None})
        offset = 0
        for k, piece in enumerate(_pieces(c, model.decode)):
            in_tokens = k < len(c.tokens)
            lp = shaper.logprobs(c, k, k + 1, offset) if in_tokens else None
            body: dict[str, Any] = {"delta": {"content": piece}} if req.chat else {"text": piece}
            yield chunk(c.index, {**body, "logprobs": lp})
            offset += len(piece)
        last: dict[str, Any] = {"delta": {}} if req.chat else {"text": ""}
        yield chunk(
            c.index, {**last, "logprobs": None, "stop_reason": c.stop_reason}, c.finish_reason
        )
    if req.include_usage:
        yield {**head, "choices": [], "usage": _usage(req, choices)}
