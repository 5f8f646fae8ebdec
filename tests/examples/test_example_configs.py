"""Each config file in examples/configs loads through its pydantic config (nested parts included)."""

from __future__ import annotations

from pathlib import Path

import pytest

from thor.algos.loop import TrainConfig
from thor.algos.sft import SFTConfig
from thor.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "configs"
KINDS = {"train.yaml": TrainConfig, "sft.yaml": SFTConfig}


def test_every_example_config_has_a_loader() -> None:
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(KINDS)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_example_config_loads(name: str) -> None:
    cfg = load_config(KINDS[name], CONFIGS / name)
    if isinstance(cfg, TrainConfig):
        # every part is validated with the config: the algorithm, its loss, the agent, the env
        assert cfg.algorithm.name == "thor" and cfg.algorithm.config.loss.name == "grpo"
        assert cfg.rollout.agent.name == "tir"
        assert cfg.rollout.env is not None and cfg.rollout.env.config.reward == "thor"
    else:
        assert cfg.lr == 2e-6 and cfg.data.name == "sft.jsonl"
