"""vLLM in training (tier 3): one update of the embedded model, pushed into a running vLLM engine.

Run with ``.venv-vllm/bin/python -m pytest -m vllm tests/train/test_train_vllm.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from thor.testing.vllm import skip_without_vllm

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(3600)]

skip_without_vllm()

QUESTIONS = ["What is 12*13?", "What is the capital of France?", "Name three prime numbers."]


def teacher_forced(model: torch.nn.Module, prompt: list[int], completion: list[int]) -> list[float]:
    """The model's log-probabilities of ``completion`` after ``prompt`` (float32, no sampling)."""
    from thor.algos.logprobs import token_logprobs

    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        lp = token_logprobs(model, ids, torch.ones_like(ids))
    return lp[0, len(prompt) :].tolist()


def test_a_training_update_reaches_the_vllm_engine(tmp_path: Path) -> None:
    import tiny_plugin  # noqa: F401  (registers the reward char_variety)

    from thor.agents.backends.hf import HFPolicy
    from thor.agents.backends.vllm_engine import VLLMPolicy
    from thor.algos.loop import TrainConfig, Trainer, load_causal_lm
    from thor.types import Problem, SamplingParams

    engine = VLLMPolicy(model="embedded", dtype="float32", max_model_len=1024, enforce_eager=True)
    try:
        model, tok = load_causal_lm("embedded")
        problems = [Problem(id=f"p{i}", problem=q) for i, q in enumerate(QUESTIONS)]
        config = TrainConfig(
            algorithm={"name": "grpo", "group_size": 4, "prompts_per_step": 2},
            rollout={"agent": "cot", "env": {"reward": "char_variety", "max_response_tokens": 12}},
            optim={"lr": 1e-4, "micro_batch_size": 8},
            precision="fp32",
            steps=1,
            out_dir=tmp_path / "run",
            export=False,
            progress=False,
        )
        trainer = Trainer(config, model=model, tokenizer=tok, problems=problems)
        metrics = trainer.train_step()
        trainer.engine.close()
        assert metrics["train_tokens"] > 0  # the update happened

        hf = HFPolicy.from_model(model, tok)
        prompts = [
            engine.encode(engine.apply_chat_template([{"role": "user", "content": q}]))
            for q in QUESTIONS
        ]
        params = SamplingParams(max_tokens=24, temperature=0.0)
        stale = engine.generate(prompts, params)
        sent = engine.update_weights(model.state_dict())
        assert sent >= len(list(model.parameters())) - 1  # lm_head may be tied to the embeddings
        fresh = engine.generate(prompts, params)
        ours = hf.generate(prompts, params)
        stale_gap, fresh_gap = [], []
        for p, old, new, mine in zip(prompts, stale, fresh, ours, strict=True):
            # the engine now scores its greedy tokens as the trained HF model does ...
            reference = teacher_forced(model, p, list(new.token_ids))
            assert new.logprobs == pytest.approx(reference, abs=0.05)
            fresh_gap.append(max(abs(a - b) for a, b in zip(new.logprobs, reference, strict=True)))
            # ... and before the push it scored its tokens as the old weights did
            trained_view = teacher_forced(model, p, list(old.token_ids))
            stale_gap.append(
                max(abs(a - b) for a, b in zip(old.logprobs, trained_view, strict=True))
            )
            # greedy output follows the HF model's (up to a near-tie late in the text)
            shared = next(
                (
                    i
                    for i, (x, y) in enumerate(zip(new.token_ids, mine.token_ids, strict=False))
                    if x != y
                ),
                min(len(new.token_ids), len(mine.token_ids)),
            )
            assert shared >= min(8, len(mine.token_ids)), (new.text, mine.text)
        print("max |logprob gap| stale:", stale_gap, "fresh:", fresh_gap)
        assert max(stale_gap) > 10 * max(fresh_gap)  # the update mattered, and it arrived
    finally:
        engine.close()


def test_training_generates_with_vllm_named_in_the_config(tmp_path: Path) -> None:
    """``generation: {name: vllm}``: the trainer builds the engine, syncs the weights before the
    first step and after each update (the WeightSync protocol), and the engine then scores its
    tokens as the trained model does."""
    import tiny_plugin  # noqa: F401  (registers the reward char_variety)

    from thor.algos.loop import TrainConfig, Trainer
    from thor.types import Problem, SamplingParams

    problems = [Problem(id=f"p{i}", problem=q) for i, q in enumerate(QUESTIONS)]
    config = TrainConfig(
        model="embedded",
        generation={
            "name": "vllm",
            "model": "embedded",
            "dtype": "float32",
            "max_model_len": 1024,
            "enforce_eager": True,
        },
        algorithm={"name": "grpo", "group_size": 4, "prompts_per_step": 2},
        rollout={"agent": "cot", "env": {"reward": "char_variety", "max_response_tokens": 12}},
        optim={"lr": 1e-4, "micro_batch_size": 8},
        precision="fp32",
        steps=1,
        out_dir=tmp_path / "run",
        export=False,
        progress=False,
    )
    trainer = Trainer(config, problems=problems)
    engine = trainer.policy
    try:
        assert type(engine).__name__ == "VLLMPolicy" and engine.weights_version == 0
        metrics = trainer.train_step()
        assert metrics["train_tokens"] > 0 and engine.weights_version == 1
        prompts = [
            engine.encode(engine.apply_chat_template([{"role": "user", "content": q}]))
            for q in QUESTIONS
        ]
        fresh = engine.generate(prompts, SamplingParams(max_tokens=16, temperature=0.0))
        for p, new in zip(prompts, fresh, strict=True):
            reference = teacher_forced(trainer.model, p, list(new.token_ids))
            assert new.logprobs == pytest.approx(reference, abs=0.05)
    finally:
        trainer.engine.close()
        engine.close()
