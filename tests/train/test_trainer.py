"""The RL trainer on a tiny random model: updates, learning, masking, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from thor.algos.loop import TrainConfig, Trainer
from thor.testing import tiny_model, tiny_tokenizer
from thor.types import Problem

pytestmark = pytest.mark.timeout(600)

PROBLEMS = [Problem(id=f"p{i}", problem=f"Say a number {i}.", answer="7") for i in range(12)]


def config(tmp_path: Path, **over: object) -> TrainConfig:
    base: dict = {
        "steps": 4,
        "seed": 0,
        "out_dir": tmp_path / "run",
        "save_every": 2,
        "export": False,
        "progress": False,
        "precision": "fp32",
        "algorithm": {
            "name": "grpo",
            "group_size": 8,
            "prompts_per_step": 4,
            "loss": {"nll_coef": 0.0},
        },
        "rollout": {"agent": "cot", "env": {"reward": "test_has_target", "max_response_tokens": 6}},
        "optim": {"lr": 3e-3, "micro_batch_size": 16},
    }
    base.update(over)
    return TrainConfig(**base)


def trainer(tmp_path: Path, **over: object) -> Trainer:
    return Trainer(
        config(tmp_path, **over),
        model=tiny_model(seed=0),
        tokenizer=tiny_tokenizer(),
        problems=PROBLEMS,
    )


def test_one_step_changes_every_parameter(tmp_path: Path) -> None:
    tr = trainer(tmp_path)
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    metrics = tr.train_step()
    assert metrics["trajectory_samples"] > 0 and metrics["train_tokens"] > 0
    unchanged = [n for n, p in tr.model.named_parameters() if torch.equal(before[n], p.detach())]
    assert unchanged == []


@pytest.mark.slow
def test_tiny_model_learns_a_target_token(tmp_path: Path) -> None:
    tr = trainer(tmp_path, steps=60)
    rewards = [tr.train_step()["reward"] for _ in range(60)]
    assert sum(rewards[-5:]) / 5 > 0.9, rewards


def test_no_signal_means_no_update(tmp_path: Path) -> None:
    tr = trainer(
        tmp_path, rollout={"agent": "cot", "env": {"reward": "correct", "max_response_tokens": 4}}
    )
    before = [p.detach().clone() for p in tr.model.parameters()]
    metrics = tr.train_step()  # a random tiny model never answers \boxed{7}: every group is flat
    assert metrics["groups_kept"] == 0 and metrics["draws"] == 4  # the draw cap stopped it
    assert all(
        torch.equal(a, b.detach()) for a, b in zip(before, tr.model.parameters(), strict=True)
    )


def test_resume_is_exact(tmp_path: Path) -> None:
    straight = trainer(tmp_path / "a", steps=4)
    straight.train()
    first = trainer(tmp_path / "b", steps=2)
    first.train()
    resumed = trainer(
        tmp_path / "b", steps=4
    )  # a new process would do the same: load the checkpoint
    assert resumed.step == 2
    resumed.train()
    for (n, a), (_, b) in zip(
        straight.model.named_parameters(), resumed.model.named_parameters(), strict=True
    ):
        assert torch.equal(a, b), n
    rows = (tmp_path / "b" / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 4


def test_trajectory_samples_train_the_end_token() -> None:
    from thor.algos.batch import TrainSample
    from thor.types import Episode, Turn

    ep = Episode(
        id="e",
        problem="p",
        prompt_token_ids=[1, 2],
        turns=[Turn(text="ok", token_ids=[5, 6], logprobs=[-1.0, -1.0], finish_reason="eos")],
    )
    s = TrainSample.from_episode(ep, 1.0, eos_token_id=0)
    assert (
        s.response_ids == [5, 6, 0]
        and s.loss_mask == [1, 1, 1]
        and s.sampling_logprobs == [-1.0, -1.0, 0.0]
    )
    cut = ep.model_copy(
        update={"turns": [ep.turns[0].model_copy(update={"finish_reason": "length"})]}
    )
    assert TrainSample.from_episode(cut, 1.0, eos_token_id=0).response_ids == [5, 6]
