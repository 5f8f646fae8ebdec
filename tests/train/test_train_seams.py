"""Training composes from registered parts defined outside the package: a loss, an agent and a
generation backend, each named in the run config (tiny random model, real sandbox)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import thor
from thor.agents.backends.hf import HFPolicy
from thor.algos.loop import TrainConfig, Trainer
from thor.config import ThorConfig
from thor.testing import tiny_model, tiny_tokenizer
from thor.types import Problem

pytestmark = pytest.mark.timeout(600)
PROBLEMS = [Problem(id=f"p{i}", problem=f"Say a number {i}.", answer="7") for i in range(8)]


def config(tmp_path: Path, **over: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "algorithm": {"name": "grpo", "group_size": 4, "prompts_per_step": 2},
        "rollout": {"agent": "cot", "env": {"reward": "example.variety", "max_response_tokens": 6}},
        "optim": {"lr": 3e-3, "micro_batch_size": 8},
        "precision": "fp32",
        "steps": 1,
        "out_dir": tmp_path / "run",
        "export": False,
        "progress": False,
    }
    return TrainConfig(**{**base, **over})


def test_a_loss_written_in_one_file_trains_by_name(tmp_path: Path, load_example) -> None:
    cispo = load_example("cispo_loss")
    cfg = config(
        tmp_path,
        algorithm={"name": "grpo", "group_size": 4, "prompts_per_step": 2, "loss": "cispo"},
    )
    tr = Trainer(cfg, model=tiny_model(seed=0), tokenizer=tiny_tokenizer(), problems=PROBLEMS)
    assert type(tr.algorithm.loss) is cispo.CISPOLoss and tr.algorithm.loss.config.eps_high == 4.0
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    metrics = tr.train_step()
    assert metrics["train_tokens"] > 0
    assert any(not torch.equal(before[n], p) for n, p in tr.model.named_parameters())


def test_a_users_agent_trains_by_name(tmp_path: Path, load_example) -> None:
    load_example("cispo_loss")  # the reward
    load_example("retry_agent")
    cfg = config(tmp_path, rollout={"agent": {"name": "retry", "retries": 1}})
    tr = Trainer(cfg, model=tiny_model(seed=1), tokenizer=tiny_tokenizer(), problems=PROBLEMS)
    assert tr.engine.agent.name == "retry"
    assert tr.train_step()["episodes"] > 0


# -- a user's generation backend: its own copy of the weights, kept in sync through the protocol --
class CopyConfig(ThorConfig):
    seed: int = 5


class CopyPolicy(HFPolicy):
    """Generates with its own (differently initialised) copy of the tiny model."""

    def __init__(self, config: CopyConfig) -> None:
        self._setup(
            tiny_model(seed=config.seed),
            tiny_tokenizer(),
            name="copy",
            max_batch_size=64,
            max_model_len=None,
            prefix_cache_mb=0,
        )
        self.config = None
        self.synced: list[int] = []

    def sync_weights(self, model: Any, *, version: int) -> None:
        super().sync_weights(model, version=version)
        self.synced.append(version)


if "test.copy" not in thor.POLICIES:
    thor.POLICIES.register("test.copy", config=CopyConfig, factory=CopyPolicy)


def test_a_users_backend_generates_in_training_with_weights_in_sync(
    tmp_path: Path, load_example
) -> None:
    load_example("cispo_loss")
    cfg = config(tmp_path, generation={"name": "test.copy", "seed": 7})
    tr = Trainer(cfg, model=tiny_model(seed=0), tokenizer=tiny_tokenizer(), problems=PROBLEMS)
    gen = tr.policy
    assert isinstance(gen, CopyPolicy) and gen.model is not tr.model and gen.synced == [0]
    metrics = tr.train_step()
    assert metrics["train_tokens"] > 0 and gen.synced == [0, 1] and gen.weights_version == 1
    for (name, p), q in zip(tr.model.named_parameters(), gen.model.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_a_backend_without_weight_sync_is_refused_before_training(
    tmp_path: Path, load_example
) -> None:
    from thor.testing import ScriptedPolicy

    class NoSyncConfig(ThorConfig):
        pass

    if "test.nosync" not in thor.POLICIES:
        thor.POLICIES.register(
            "test.nosync", config=NoSyncConfig, factory=lambda c: ScriptedPolicy(lambda p: "x")
        )
    load_example("cispo_loss")
    with pytest.raises(thor.ConfigError, match="cannot take weight updates"):
        Trainer(
            config(tmp_path, generation="test.nosync"),
            model=tiny_model(seed=0),
            tokenizer=tiny_tokenizer(),
            problems=PROBLEMS,
        )
