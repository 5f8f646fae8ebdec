"""Registers the reward ``char_variety`` for training subprocesses (``thor train --import THIS_FILE``).

The number of distinct characters in the response (divided by 10): a random tiny model's responses
differ in it, so every group has reward spread and every step updates the model.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

import thor


class _NoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CharVariety:
    name = "char_variety"

    def __init__(self, cfg: _NoConfig) -> None:
        pass

    def __call__(self, episode: thor.Episode) -> float:
        return len(set(episode.response_text())) / 10


if "char_variety" not in thor.REWARDS:
    thor.REWARDS.register("char_variety", config=_NoConfig, factory=CharVariety)
