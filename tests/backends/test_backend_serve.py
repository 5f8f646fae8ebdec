"""``thor serve`` as a real subprocess on loopback, driven by OpenAIPolicy; killed and restarted."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from thor.agents.backends.openai_client import OpenAIPolicy
from thor.errors import PolicyError
from thor.testing import check_policy
from thor.types import SamplingParams

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A ``thor serve`` subprocess; ``start()`` waits for the line with its URL."""

    def __init__(self, port: int, model: str = "embedded") -> None:
        self.port, self.model = port, model
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 900) -> str:
        cmd = [
            sys.executable,
            "-m",
            "thor",
            "serve",
            "--model",
            self.model,
            "--port",
            str(self.port),
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("thor serve: http://"):
                return line.split()[2]
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"thor serve exited with {self.proc.returncode}")
        raise TimeoutError("thor serve did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture()
def server(port: int) -> Iterator[Served]:
    served = Served(port)
    try:
        yield served
    finally:
        served.kill()


def test_serve_generate_kill_restart(server: Served, port: int) -> None:
    url = server.start()
    assert url == f"http://127.0.0.1:{port}/v1"
    client = OpenAIPolicy(
        base_url=url, model="embedded", max_retries=2, backoff_s=0.2, timeout_s=600
    )
    check_policy(client, max_tokens=6)
    prompt = client.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}]
    )
    params = SamplingParams(max_tokens=32, temperature=0.0)
    [first] = client.generate([prompt], params)
    assert "Paris" in first.text and first.finish_reason == "eos"
    assert first.logprobs is not None and len(first.logprobs) == len(first.token_ids)

    # kill the server while a long batch is in flight: the client reports it, invents nothing
    errors: list[BaseException] = []
    results: list[object] = []

    def long_run() -> None:
        try:
            counting = "Count from 1 to 1000: 1, 2, 3, 4, 5,"  # a continuation that goes on and on
            results.append(
                client.generate(
                    [counting] * 4, SamplingParams(max_tokens=400, temperature=0.7, seed=1)
                )
            )
        except PolicyError as err:
            errors.append(err)

    worker = threading.Thread(target=long_run)
    worker.start()
    time.sleep(3.0)
    server.kill()
    worker.join(timeout=300)
    assert not worker.is_alive()
    assert not results and len(errors) == 1
    assert "failed 3 times" in str(errors[0])

    # the same client works again once a server is back on the same port
    assert server.start() == url
    [again] = client.generate([prompt], params)
    assert again.token_ids == first.token_ids


def test_the_official_openai_client_against_thor_serve(server: Served) -> None:
    import openai

    url = server.start()
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)
    assert [m.id for m in client.models.list()] == ["embedded"]
    question = [{"role": "user", "content": "What is the capital of France?"}]
    r = client.chat.completions.create(
        model="embedded",
        messages=question,  # type: ignore[arg-type]
        max_tokens=24,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    answer = r.choices[0].message.content or ""
    assert "Paris" in answer and r.choices[0].finish_reason == "stop"
    content = r.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and all(len(e.top_logprobs) == 3 for e in content)
    assert all(e.logprob == pytest.approx(e.top_logprobs[0].logprob, abs=1e-2) for e in content)
    streamed = client.chat.completions.create(
        model="embedded",
        messages=question,  # type: ignore[arg-type]
        max_tokens=24,
        temperature=0,
        stream=True,
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == answer
    two = client.completions.create(model="embedded", prompt="2 + 2 =", max_tokens=4, n=2, seed=3)
    assert len(two.choices) == 2
