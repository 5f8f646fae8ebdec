from __future__ import annotations

import pytest
import torch
from pydantic import BaseModel, ConfigDict

import thor


class _NoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


TARGET = "7"


class TargetReward:
    """1 when the response contains the target character: a signal a tiny model can learn fast."""

    name = "has_target"

    def __init__(self, cfg: _NoConfig) -> None:
        pass

    def __call__(self, episode: thor.Episode) -> float:
        return 1.0 if TARGET in episode.response_text() else 0.0


if "test_has_target" not in thor.REWARDS:
    thor.REWARDS.register("test_has_target", config=_NoConfig, factory=TargetReward)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest (and deterministically) on one thread, beside the sandbox workers."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
