"""TRL's GRPOTrainer trains on thor's envs through the rollout_func adapter (tool outputs masked)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import tiny_plugin  # noqa: F401  (registers the reward char_variety)
import torch

from thor.algos.trl_adapter import episode_fields, make_rollout_func, thor_reward_func, trl_dataset
from thor.testing import ScriptedPolicy, tiny_model, tiny_tokenizer
from thor.types import Episode, Problem, Turn

pytestmark = pytest.mark.timeout(600)
F = "```"
PROBLEMS = [Problem(id=f"q{i}", problem=f"What is 6*7? ({i})", answer="42") for i in range(2)]


def grpo_trainer(tmp_path: Path, model: Any, rollout: Any) -> Any:
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=str(tmp_path / "trl"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_steps=1,
        learning_rate=1e-2,
        beta=0.0,
        bf16=False,
        use_cpu=True,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        activation_checkpointing=False,
        disable_tqdm=True,
        seed=0,
    )
    return GRPOTrainer(
        model=model,
        processing_class=tiny_tokenizer(),
        reward_funcs=thor_reward_func,
        args=args,
        train_dataset=trl_dataset(PROBLEMS),
        rollout_func=rollout,
    )


def capture_inputs(trainer: Any) -> list[dict[str, Any]]:
    """Record what reaches the loss (TRL's prepared inputs, tool_mask included)."""
    seen: list[dict[str, Any]] = []
    original = trainer.compute_loss

    def compute_loss(model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        seen.append({k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)})
        return original(model, inputs, *args, **kwargs)

    trainer.compute_loss = compute_loss
    return seen


def test_grpo_trainer_trains_on_tool_episodes_with_tool_outputs_masked(tmp_path: Path) -> None:
    first = itertools.cycle([f"I compute.\n{F}python\nprint(6 * 7)\n{F}", "I guess \\boxed{41}."])

    def script(prompt: str) -> str:
        return "So \\boxed{42}." if prompt.endswith(f"{F}\n") else next(first)

    model = tiny_model(seed=0)
    rollout = make_rollout_func(
        {"agent": "tir", "env": {"reward": "correct", "max_response_tokens": 200}},
        PROBLEMS,
        policy=ScriptedPolicy(script),
    )
    trainer = grpo_trainer(tmp_path, model, rollout)
    inputs = capture_inputs(trainer)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    try:
        trainer.train()
    finally:
        rollout.close()
    unchanged = [n for n, p in model.named_parameters() if torch.equal(before[n], p.detach())]
    assert unchanged == []
    rewards = sorted(float(ep.reward or 0) for ep in rollout.episodes)
    assert rewards == [0.0, 0.0, 1.0, 1.0]  # the code path is right, the guess is wrong

    # what reached the loss: tool-output tokens carry tool_mask 0, everything the model wrote 1
    tok = tiny_tokenizer()
    [batch] = inputs
    masked = []
    for ids, cmask, tmask in zip(
        batch["completion_ids"], batch["completion_mask"], batch["tool_mask"], strict=True
    ):
        keep = cmask.bool()
        masked.append(tok.decode(ids[keep & (tmask == 0)].tolist()))
        trained = tok.decode(ids[keep & (tmask == 1)].tolist())
        assert "```output" not in trained and trained.endswith(tok.eos_token)
    observations = sorted("".join(t.observation for t in ep.turns) for ep in rollout.episodes)
    assert sorted(masked) == observations
    assert sum(bool(m) for m in masked) == 2 and all("42" in m for m in masked if m)


def test_grpo_trainer_generates_with_its_own_model(tmp_path: Path) -> None:
    model = tiny_model(seed=1)
    rollout = make_rollout_func(
        {"agent": "cot", "env": {"reward": "char_variety", "max_response_tokens": 8}},
        PROBLEMS,
        seed=3,
    )
    trainer = grpo_trainer(tmp_path, model, rollout)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    try:
        trainer.train()
    finally:
        rollout.close()
    unchanged = [n for n, p in model.named_parameters() if torch.equal(before[n], p.detach())]
    assert unchanged == []
    assert len(rollout.episodes) == 4 and rollout.episodes[0].metadata["problem_id"] in {"q0", "q1"}
    lps = rollout.episodes[0].turns[0].logprobs
    assert lps and all(lp < 0 for lp in lps)  # the HF backend's sampling logprobs, not scripted
    assert len({float(ep.reward or 0) for ep in rollout.episodes}) > 1


def test_episode_fields_and_unknown_prompts() -> None:
    ep = Episode(
        id="e",
        problem="p",
        prompt_token_ids=[5, 6],
        turns=[
            Turn(
                text="a",
                token_ids=[10, 11],
                logprobs=[-0.5, -0.25],
                observation="o",
                observation_token_ids=[12],
            ),
            Turn(text="b", token_ids=[13], logprobs=[-1.0]),
        ],
        terminated=True,
        reward=1.0,
    )
    f = episode_fields(ep, eos_token_id=0)
    assert f["completion_ids"] == [10, 11, 12, 13, 0]
    assert f["env_mask"] == [1, 1, 0, 1, 1]
    assert f["logprobs"] == [-0.5, -0.25, 0.0, -1.0, 0.0]
    assert f["prompt_ids"] == [5, 6] and f["thor_reward"] == 1.0
    cut = episode_fields(ep.model_copy(update={"terminated": False}), eos_token_id=0)
    assert cut["completion_ids"] == [10, 11, 12, 13]  # a budget cut gets no EOS
    rollout = make_rollout_func({"agent": "cot"}, PROBLEMS, policy=ScriptedPolicy(["x"]))
    with pytest.raises(ValueError, match="not one of the 2 problems"):
        rollout(["What is 1+1?"], trainer=None)
    with pytest.raises(ValueError, match="needs the rollout_func"):
        thor_reward_func(prompts=["p"], completions=["c"])
    rollout.close()
