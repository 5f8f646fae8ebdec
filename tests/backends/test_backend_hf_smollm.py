"""The real embedded model (SmolLM2-135M-Instruct) through the HF backend, and its conversion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from thor.agents.backends.embedded import embedded_gguf_path, embedded_model_dir
from thor.agents.backends.hf import HFPolicy
from thor.testing import check_policy
from thor.types import SamplingParams

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

QUESTIONS = [
    "What is 12*13?",
    "Name a prime number larger than 10.",
    "What is the capital of France?",
]


@pytest.fixture(scope="module")
def smol() -> HFPolicy:
    return HFPolicy(model="embedded", dtype="float32")


def chat(policy: HFPolicy, q: str) -> str:
    return policy.apply_chat_template([{"role": "user", "content": q}])


def test_embedded_model_is_smollm2_with_its_chat_template(smol: HFPolicy) -> None:
    assert smol.model.config.model_type == "llama" and smol.model.config.num_hidden_layers == 30
    prompt = chat(smol, "hi")
    assert prompt == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert smol.eos_token_ids == frozenset({smol.tokenizer.convert_tokens_to_ids("<|im_end|>")})
    check_policy(smol, max_tokens=6)


def test_greedy_answers_end_with_eos_and_are_deterministic(smol: HFPolicy) -> None:
    params = SamplingParams(max_tokens=64, temperature=0.0)
    a = smol.generate([chat(smol, QUESTIONS[2])], params)[0]
    b = smol.generate([chat(smol, QUESTIONS[2])], params)[0]
    assert a.token_ids == b.token_ids and a.finish_reason == "eos"
    assert "Paris" in a.text


def test_batched_greedy_equals_one_at_a_time(smol: HFPolicy) -> None:
    prompts = [chat(smol, q) for q in QUESTIONS]
    params = SamplingParams(max_tokens=24, temperature=0.0)
    batched = smol.generate(prompts, params)
    for p, b in zip(prompts, batched, strict=True):
        assert smol.generate([p], params)[0].token_ids == b.token_ids


def test_a_tool_integrated_transcript_reuses_the_prefix_cache_and_generates_the_same(
    smol: HFPolicy,
) -> None:
    """Three turns of code and output: the cached policy prefills only what is new, and its tokens
    and logprobs are those of a policy without the cache on the same weights."""
    assert smol.prefix_cache is not None
    plain = HFPolicy.from_model(smol.model, smol.tokenizer)
    params = SamplingParams(max_tokens=32, temperature=0.0, stop=["```output"])
    output = smol.encode("\n```output\n156\n```\n")
    ctx = [smol.encode(chat(smol, q + " Use python.")) for q in QUESTIONS]
    before = smol.prefix_cache.stats.reused_tokens
    for _ in range(3):
        a, b = smol.generate(ctx, params), plain.generate(ctx, params)
        for x, y in zip(a, b, strict=True):
            assert x.token_ids == y.token_ids
            assert x.logprobs == pytest.approx(y.logprobs, abs=2e-3)
        ctx = [c + x.token_ids + output for c, x in zip(ctx, a, strict=True)]
    assert smol.prefix_cache.stats.reused_tokens - before > sum(len(c) for c in ctx) // 2


def test_seeded_sampling_in_a_group(smol: HFPolicy) -> None:
    group = [chat(smol, QUESTIONS[0])] * 4
    params = SamplingParams(max_tokens=24, temperature=0.8, seed=3)
    a = smol.generate(group, params)
    assert [c.token_ids for c in a] == [c.token_ids for c in smol.generate(group, params)]
    assert len({tuple(c.token_ids) for c in a}) > 1


def test_the_model_stops_right_after_it_closes_a_python_block(smol: HFPolicy) -> None:
    prompt = chat(smol, "Write python code that prints 2+2.") + "```python\nprint(2 + 2)\n"
    [c] = smol.generate(
        [prompt], SamplingParams(max_tokens=64, temperature=0.0, stop_at_code_close=True)
    )
    # the prompt opened the block, so the completion alone has no opening fence: it must not stop
    assert c.finish_reason != "code_close"
    prompt = chat(smol, "Write python code that prints 2+2. Answer with a python code block.")
    [c] = smol.generate(
        [prompt], SamplingParams(max_tokens=96, temperature=0.0, stop_at_code_close=True)
    )
    assert c.finish_reason == "code_close", c.text
    assert c.text.rstrip().endswith("```") and "```python" in c.text


def test_default_dtype_follows_the_hardware_and_bf16_generates() -> None:
    from thor.hardware import bf16_is_fast

    default = HFPolicy(model="embedded")
    expected = "torch.bfloat16" if bf16_is_fast("cpu") else "torch.float32"
    assert str(default.model.dtype) == expected
    bf16 = HFPolicy(model="embedded", dtype="bfloat16")
    assert str(bf16.model.dtype) == "torch.bfloat16"
    [c] = bf16.generate([chat(bf16, QUESTIONS[2])], SamplingParams(max_tokens=16, temperature=0))
    assert c.text and c.logprobs and len(c.logprobs) == len(c.token_ids)


def test_a_gguf_file_loads_directly_and_matches_the_converted_directory(smol: HFPolicy) -> None:
    policy = HFPolicy(model=str(embedded_gguf_path()), dtype="float32")
    params = SamplingParams(max_tokens=16, temperature=0.0)
    prompt = chat(smol, QUESTIONS[0])
    assert (
        policy.generate([prompt], params)[0].token_ids
        == smol.generate([prompt], params)[0].token_ids
    )


def test_two_processes_converting_at_once_share_one_complete_directory(tmp_path: Path) -> None:
    code = (
        "from thor.agents.backends.embedded import embedded_model_dir; print(embedded_model_dir())"
    )
    env = {**os.environ, "THOR_CACHE_DIR": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=1500)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1]
    models = tmp_path / "models"
    dirs = [d for d in models.iterdir() if d.is_dir()]
    assert [d.name for d in dirs] == [Path(outs[0]).name]  # no temporary directory left behind
    assert json.loads((dirs[0] / "thor-embedded.json").read_text())["format"] >= 1
    # the same call again is a cache hit and returns at once
    assert embedded_model_dir(tmp_path) == Path(outs[0])
