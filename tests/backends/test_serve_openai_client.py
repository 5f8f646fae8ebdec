"""The official ``openai`` client against ``thor serve`` (in-process, loopback, the tiny model)."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from thor.agents.backends.hf import HFPolicy
from thor.agents.backends.server import PolicyServer
from thor.testing import ScriptedPolicy, tiny_model, tiny_tokenizer
from thor.types import SamplingParams

pytestmark = pytest.mark.timeout(180)

CHAT = [{"role": "user", "content": "What is 2 + 2?"}]


@pytest.fixture(scope="module")
def hf() -> HFPolicy:
    return HFPolicy.from_model(tiny_model(seed=4), tiny_tokenizer(), name="tiny")


@pytest.fixture(scope="module")
def served(hf: HFPolicy) -> Iterator[PolicyServer]:
    with PolicyServer(hf, port=0, model_name="tiny") as server:
        yield server


@pytest.fixture(scope="module")
def client(served: PolicyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url, api_key="unused", max_retries=0, timeout=60)


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["tiny"]
    assert client.models.retrieve("tiny").owned_by == "thor"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-4")
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_chat_uses_the_chat_template(client: openai.OpenAI, hf: HFPolicy) -> None:
    r = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=8, temperature=0)  # type: ignore[arg-type]
    [direct] = hf.generate(
        [hf.apply_chat_template(CHAT)], SamplingParams(max_tokens=8, temperature=0)
    )
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == direct.text
    assert r.usage is not None and r.usage.completion_tokens == len(direct.token_ids)
    assert r.usage.prompt_tokens == len(hf.encode(hf.apply_chat_template(CHAT)))
    assert r.choices[0].finish_reason == ("length" if direct.finish_reason == "length" else "stop")


def test_n_samples_with_a_seed_are_reproducible(client: openai.OpenAI) -> None:
    def ask() -> list[str]:
        r = client.completions.create(
            model="tiny", prompt=["x = 1", "y ="], max_tokens=6, n=3, seed=7
        )
        assert [c.index for c in r.choices] == list(range(6))
        return [c.text for c in r.choices]

    first = ask()
    assert first == ask()
    assert len(set(first[:3])) > 1  # the three samples of one prompt differ
    chat = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=6, n=4, seed=1)  # type: ignore[arg-type]
    assert len(chat.choices) == 4


def test_completion_top_logprobs(client: openai.OpenAI, hf: HFPolicy) -> None:
    r = client.completions.create(
        model="tiny", prompt="x = 1", max_tokens=6, temperature=0, logprobs=3
    )
    lp = r.choices[0].logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
    [direct] = hf.generate(["x = 1"], SamplingParams(max_tokens=6, temperature=0))
    assert lp.token_logprobs == pytest.approx(direct.logprobs, abs=1e-4)
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    for tok, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True):
        assert 1 <= len(top) <= 3
        best = max(top.values())
        assert top.get(tok, best) == pytest.approx(value, abs=1e-3)  # greedy: the top one
        assert best == pytest.approx(value, abs=1e-3)
    none = client.completions.create(model="tiny", prompt="x", max_tokens=3, logprobs=0)
    assert none.choices[0].logprobs is not None and none.choices[0].logprobs.top_logprobs is None


def test_chat_top_logprobs(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="tiny",
        messages=CHAT,
        max_tokens=5,
        temperature=0,
        logprobs=True,
        top_logprobs=4,  # type: ignore[arg-type]
    )
    content = r.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and len(content) == r.usage.completion_tokens  # type: ignore[union-attr]
    for entry in content:
        assert len(entry.top_logprobs) == 4
        values = [t.logprob for t in entry.top_logprobs]
        assert values == sorted(values, reverse=True)
        assert entry.logprob == pytest.approx(values[0], abs=1e-3)  # greedy: the top one
        assert entry.bytes == list(entry.token.encode("utf-8", "replace"))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=CHAT, top_logprobs=2)  # type: ignore[arg-type]
    assert info.value.body["param"] == "top_logprobs"  # type: ignore[index]


def test_streams_give_the_same_text_as_one_response(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=12, seed=5, n=2)  # type: ignore[arg-type]
    stream = client.chat.completions.create(
        model="tiny",
        messages=CHAT,  # type: ignore[arg-type]
        max_tokens=12,
        seed=5,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts, finish, usage = ["", ""], [None, None], None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if not chunk.choices:
            usage = chunk.usage
            continue
        c = chunk.choices[0]
        texts[c.index] += c.delta.content or ""
        finish[c.index] = c.finish_reason or finish[c.index]
    assert texts == [c.message.content for c in whole.choices]
    assert finish == [c.finish_reason for c in whole.choices]
    assert usage is not None and usage.total_tokens == whole.usage.total_tokens  # type: ignore[union-attr]
    one = client.completions.create(model="tiny", prompt="a", max_tokens=10, seed=2)
    streamed = client.completions.create(
        model="tiny", prompt="a", max_tokens=10, seed=2, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == one.choices[0].text


def test_the_raw_stream_is_server_sent_events(served: PolicyServer) -> None:
    body = json.dumps({"model": "tiny", "prompt": "x", "max_tokens": 3, "stream": True}).encode()
    req = urllib.request.Request(
        served.url + "/completions", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        events = resp.read().decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(e.startswith("data: {") for e in events[:-2])
    assert json.loads(events[-3][6:])["choices"][0]["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"prompt": [[5, 99_999]]}, "prompt"),
        ({"prompt": [[-1, 5]]}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "n": 0}, "n"),
        ({"prompt": "x", "n": 1000}, "n"),
        ({"prompt": "x", "temperature": -1}, "temperature"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "logprobs": 21}, "logprobs"),
        ({"prompt": "x", "echo": True}, "echo"),
        ({"prompt": "x", "stop": [""]}, "stop"),
        ({"prompt": "x", "seed": "s"}, "seed"),
    ],
)
def test_bad_requests_get_openais_error_shape(
    client: openai.OpenAI, kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="tiny", **kwargs)
    err = info.value.body
    assert isinstance(err, dict) and set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["param"] == param


def test_bad_chat_messages(client: openai.OpenAI) -> None:
    for messages in ([], [{"role": "wizard", "content": "x"}], [{"role": "user", "content": 5}]):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="tiny", messages=messages)  # type: ignore[arg-type]
        assert info.value.body["param"] == "messages"  # type: ignore[index]


def _mixed_batch(server: PolicyServer, bad: list[Any]) -> dict[int, Any]:
    """12 concurrent requests, every fourth one bad: the response or the status of each."""
    c = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=60)
    outcomes: dict[int, Any] = {}

    def call(i: int) -> None:
        prompt = bad[(i // 4) % len(bad)] if i % 4 == 0 else f"n = {i}"
        try:
            outcomes[i] = c.completions.create(model="m", prompt=prompt, max_tokens=3)
        except openai.APIStatusError as err:
            outcomes[i] = err.status_code

    threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


def test_one_bad_request_never_fails_its_batch(hf: HFPolicy) -> None:
    """Good requests batched beside bad ones succeed: bad ids are refused at parse time (400),
    and a batch whose generation fails is retried request by request."""

    def script(prompt: str) -> str:
        if "boom" in prompt:
            raise RuntimeError("this prompt breaks the model")
        return "fine"

    scripted = ScriptedPolicy(script, tokenizer=tiny_tokenizer())
    for policy, bad in ((hf, [[5, 10**6], [-3]]), (scripted, ["boom", [7, 10**6]])):
        with PolicyServer(policy, port=0, model_name="m", batch_wait_s=0.3) as server:
            outcomes = _mixed_batch(server, bad)
        assert len(outcomes) == 12
        for i, out in outcomes.items():
            if i % 4:
                assert not isinstance(out, int), (i, out)  # every good request succeeded
            else:
                assert out in (400, 500), (i, out)


def test_a_token_is_required_when_set(hf: HFPolicy) -> None:
    with PolicyServer(hf, port=0, model_name="tiny", token="s3cret") as server:
        wrong = openai.OpenAI(base_url=server.url, api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as info:
            wrong.models.list()
        assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]
        right = openai.OpenAI(base_url=server.url, api_key="s3cret", max_retries=0)
        assert right.completions.create(model="tiny", prompt="x", max_tokens=2).choices


def test_an_http_1_0_client_gets_a_plain_stream(served: PolicyServer) -> None:
    import socket

    body = json.dumps({"model": "tiny", "prompt": "x", "max_tokens": 3, "stream": True})
    raw = (f"POST /v1/completions HTTP/1.0\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
    with socket.create_connection((served.host, served.port), timeout=60) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):  # the server closes at the end
            data += chunk
    head, _, events = data.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower() and events.endswith(b"data: [DONE]\n\n")
