"""Rewards as configs: a registered name, ``{name: weight}``, or a list of weighted terms.

The list form is what a YAML run config writes when a term needs settings of its own::

    reward:
      - {name: correct, weight: 1.0, config: {mode: lenient}}
      - {name: format, weight: 0.1}

Example:
    >>> fn = build_reward([{"name": "tool_calls", "weight": 0.5, "config": {"mode": "bonus"}}])
    >>> from thor.types import Episode
    >>> fn(Episode(id="e", problem="?"))
    0.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thor.errors import UnknownNameError
from thor.registries import REWARDS, RewardSpec
from thor.types import Episode

__all__ = ["RewardConfig", "RewardTerm", "build_reward", "check_reward_names"]


class RewardTerm(BaseModel):
    """One weighted term: ``{name, weight, config}`` (or the config's fields beside the name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reward: RewardSpec
    weight: float = Field(1.0, description="The term's weight in the sum")

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        if isinstance(data, dict) and "reward" not in data:
            fields = dict(data)
            weight = fields.pop("weight", 1.0)
            return {"reward": fields, "weight": weight}
        return data


RewardConfig = str | dict[str, float] | list[RewardTerm]
"""A reward in a config: a registered name, ``{name: weight}``, or a list of :class:`RewardTerm`."""


def check_reward_names(value: Any) -> Any:
    """Fail now, with did-you-mean, on an unknown reward name in the name or mapping forms."""
    names = [value] if isinstance(value, str) else list(value) if isinstance(value, Mapping) else []
    for name in names:
        try:
            REWARDS.entry(name)
        except UnknownNameError as err:
            raise ValueError(str(err)) from None
    return value


def build_reward(spec: RewardConfig | Sequence[Mapping[str, Any]]) -> Callable[[Episode], float]:
    """The reward function of a config value (a list of terms becomes a :class:`Weighted`)."""
    from thor.rewards import Weighted, resolve_reward

    if isinstance(spec, str | Mapping):
        return resolve_reward(spec)
    terms = [t if isinstance(t, RewardTerm) else RewardTerm.model_validate(t) for t in spec]
    built: dict[str | Callable[[Episode], float], float] = {}
    for term in terms:
        built[term.reward.build()] = term.weight
    return Weighted(built)
