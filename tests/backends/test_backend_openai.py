"""OpenAIPolicy against thor's own server (in-process, loopback) and against servers that misbehave."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch

from thor.agents.backends.hf import HFPolicy
from thor.agents.backends.openai_client import OpenAIPolicy
from thor.agents.backends.server import PolicyServer
from thor.errors import PolicyError
from thor.testing import ScriptedPolicy, check_policy, tiny_model, tiny_tokenizer
from thor.types import SamplingParams

pytestmark = pytest.mark.timeout(120)

PROMPTS = ["x = 1", "What is 2+2?", "Let me compute.\n```python\nprint(1)\n```\n", "a"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model saved as a Hugging Face directory (what a server loads)."""
    d = tmp_path_factory.mktemp("tiny-model")
    tiny_model(seed=4).save_pretrained(d)
    tiny_tokenizer().save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def hf(tiny_dir: Path) -> HFPolicy:
    return HFPolicy(model=str(tiny_dir), dtype="float32")


@pytest.fixture(scope="module")
def served(hf: HFPolicy) -> Iterator[PolicyServer]:
    with PolicyServer(hf, port=0, model_name="tiny") as server:
        yield server


def client(url: str, tiny_dir: Path, **kw: Any) -> OpenAIPolicy:
    return OpenAIPolicy(base_url=url, model="tiny", tokenizer=str(tiny_dir), **kw)


def test_openai_policy_keeps_the_protocol(served: PolicyServer, tiny_dir: Path) -> None:
    check_policy(client(served.url, tiny_dir))


def test_http_path_gives_the_direct_policys_tokens_and_logprobs(
    served: PolicyServer, hf: HFPolicy, tiny_dir: Path
) -> None:
    remote = client(served.url, tiny_dir)
    for params in (
        SamplingParams(max_tokens=10, temperature=0.0),
        SamplingParams(max_tokens=10, temperature=0.9, seed=11),
    ):
        direct = hf.generate(PROMPTS, params)
        over_http = remote.generate(PROMPTS, params)
        for d, h in zip(direct, over_http, strict=True):
            assert h.token_ids == d.token_ids
            assert h.text == d.text
            assert h.logprobs == pytest.approx(d.logprobs, abs=1e-4)
            assert h.finish_reason == d.finish_reason


def test_token_id_prompts_and_client_side_code_close(tiny_dir: Path) -> None:
    text = "First.\n```python\nprint(6 * 7)\n```\n```output\n42\n```\nDone."
    policy = ScriptedPolicy(lambda p: text, tokenizer=tiny_tokenizer())
    with PolicyServer(policy, port=0, model_name="tiny") as server:
        remote = client(server.url, tiny_dir)
        ids = remote.encode("Question?")
        [c] = remote.generate([ids], SamplingParams(max_tokens=100, stop_at_code_close=True))
    assert c.finish_reason == "code_close"
    assert c.text == remote.decode(c.token_ids)
    assert c.text.startswith("First.\n```python\nprint(6 * 7)\n```") and "42" not in c.text
    # the server saw the token ids, not re-tokenised text
    assert policy.calls[-1] == [ids]


class _JunkHandler(BaseHTTPRequestHandler):
    reply: Callable[[_JunkHandler], None]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).reply(self)

    def send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def junk_server(reply: Callable[[_JunkHandler], None]) -> ThreadingHTTPServer:
    handler = type("Handler", (_JunkHandler,), {"reply": staticmethod(reply)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, b"<html>not json</html>", "not JSON"),
        (200, b'{"object": "text_completion"}', "no 'choices'"),
        (200, b'{"choices": [{"text": 5}]}', "not a string"),
        (200, b"[1, 2, 3]", "expected a JSON object"),
        (
            200,
            b'{"choices": [{"text": "hi", "logprobs": {"tokens": ["token_id:1"], "token_logprobs": []}}]}',
            "does not match",
        ),
        (200, b'{"error": {"message": "model overloaded"}}', "model overloaded"),
        (400, b'{"error": {"message": "prompt too long"}}', "HTTP 400: prompt too long"),
        (404, b"nothing here", "HTTP 404"),
    ],
)
def test_garbage_answers_raise_policy_errors_naming_the_problem(
    tiny_dir: Path, status: int, body: bytes, message: str
) -> None:
    server = junk_server(lambda h: h.send(status, body))
    try:
        remote = client(_url(server), tiny_dir, max_retries=0)
        with pytest.raises(PolicyError, match=message):
            remote.generate(["x"], SamplingParams(max_tokens=4))
    finally:
        server.shutdown()
        server.server_close()


def test_5xx_is_retried_with_backoff_then_succeeds(tiny_dir: Path) -> None:
    calls: list[float] = []
    good = json.dumps(
        {
            "choices": [
                {
                    "text": "ok",
                    "finish_reason": "length",
                    "logprobs": {
                        "tokens": ["token_id:72", "token_id:73"],
                        "token_logprobs": [-0.5, -0.25],
                    },
                }
            ]
        }
    ).encode()

    def reply(h: _JunkHandler) -> None:
        calls.append(time.monotonic())
        h.send(503 if len(calls) < 3 else 200, b'{"error": "busy"}' if len(calls) < 3 else good)

    server = junk_server(reply)
    try:
        remote = client(_url(server), tiny_dir, max_retries=3, backoff_s=0.05)
        [c] = remote.generate(["x"], SamplingParams(max_tokens=2))
    finally:
        server.shutdown()
        server.server_close()
    assert len(calls) == 3
    assert calls[2] - calls[1] >= calls[1] - calls[0] >= 0.04  # exponential backoff
    assert (c.token_ids, c.logprobs, c.finish_reason) == ([72, 73], [-0.5, -0.25], "length")


def test_a_dead_server_raises_after_the_retries(tiny_dir: Path) -> None:
    server = junk_server(lambda h: h.send(200, b"{}"))
    url = _url(server)
    server.shutdown()
    server.server_close()
    remote = client(url, tiny_dir, max_retries=2, backoff_s=0.01)
    t0 = time.monotonic()
    with pytest.raises(PolicyError, match="failed 3 times"):
        remote.generate(["x", "y"], SamplingParams(max_tokens=2))
    assert time.monotonic() - t0 < 10


def test_server_rejects_bad_requests(served: PolicyServer) -> None:
    import urllib.error
    import urllib.request

    def post(body: Any) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(
            served.url + "/completions",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    assert post({"model": "nope", "prompt": "x"})[0] == 404
    assert post({"model": "tiny", "prompt": {"a": 1}})[0] == 400
    assert post({"model": "tiny", "prompt": "x", "n": 0})[0] == 400  # n > 1 is served
    status, err = post({"model": "tiny", "prompt": "x", "temperature": -1})
    assert status == 400 and "temperature" in err["error"]["message"]
    status, ok = post({"model": "tiny", "prompt": ["x", [5, 6]], "max_tokens": 3, "logprobs": 1})
    assert status == 200 and [c["index"] for c in ok["choices"]] == [0, 1]
    assert all(len(c["logprobs"]["tokens"]) <= 3 for c in ok["choices"])
    with urllib.request.urlopen(served.url + "/models", timeout=30) as resp:
        assert json.loads(resp.read())["data"][0]["id"] == "tiny"


def test_the_server_batches_concurrent_requests(tiny_dir: Path) -> None:
    sizes: list[int] = []
    inner = ScriptedPolicy(lambda p: "fine", tokenizer=tiny_tokenizer())

    class Counting(ScriptedPolicy):
        def generate(self, prompts: Any, params: SamplingParams, *, row_seeds: Any = None) -> Any:
            sizes.append(len(prompts))
            return inner.generate(prompts, params)

    with PolicyServer(
        Counting(lambda p: "", tokenizer=tiny_tokenizer()),
        port=0,
        model_name="tiny",
        batch_wait_s=0.2,
    ) as server:
        out = client(server.url, tiny_dir, concurrency=8).generate(
            ["q"] * 8, SamplingParams(seed=1)
        )
    assert [c.text for c in out] == ["fine"] * 8
    assert max(sizes) > 1 and sum(sizes) == 8


def test_http_generation_uses_tiny_threads_quickly(served: PolicyServer, tiny_dir: Path) -> None:
    """Many small concurrent requests complete and come back in order."""
    remote = client(served.url, tiny_dir, concurrency=4)
    prompts = [f"n = {i}" for i in range(12)]
    out = remote.generate(prompts, SamplingParams(max_tokens=3, temperature=0))
    direct = [
        remote.generate([p], SamplingParams(max_tokens=3, temperature=0))[0] for p in prompts[:3]
    ]
    assert [c.token_ids for c in out[:3]] == [c.token_ids for c in direct]
    assert torch.tensor([len(c.token_ids) for c in out]).le(3).all()
