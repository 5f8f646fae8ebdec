r"""Rewards: answer verification (math-verify in worker processes) and composable reward functions.

Verification (:mod:`thor.rewards.verifier`):

- :func:`extract_answer` finds the final answer (strict last ``\boxed{}`` by default, the training
  mode; lenient fallbacks on request; math-verify's own extraction, ``mode="math_verify"``, through
  :meth:`Verifier.verify_response` and :meth:`Verifier.extract_answer`);
- :class:`Verifier` checks a predicted answer against a gold answer with math-verify plus thor's
  corrections, in worker processes with a per-pair timeout and a memory limit, a (gold, pred)
  LRU cache, batch and async APIs; :func:`default_verifier` is the process-wide shared instance;
- model text is never evaluated as code (:mod:`thor.rewards.safety`).

Reward functions (registered in :data:`thor.REWARDS` by name, each with a config): ``correct``,
``format``, ``repetition``, ``exec_success``, ``tool_calls``, ``thor`` (THOR's trajectory reward;
also ``thor_trajectory``) and ``weighted``. :func:`score` is the one function the env and the
trainers call; :func:`resolve_reward` turns a name or ``{name: weight}`` into a reward function.

Example:
    >>> from thor.rewards import extract_answer, resolve_reward
    >>> extract_answer(r"... so \boxed{\dfrac{1}{2}}")
    '\\dfrac{1}{2}'
    >>> resolve_reward({"format": 1.0, "tool_calls": 0.1})
    Weighted({'format': 1.0, 'tool_calls': 0.1})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from thor.registries import REWARDS
from thor.rewards.composite import (
    RewardBreakdown,
    RewardStats,
    ThorTrajectoryConfig,
    ThorTrajectoryReward,
    Weighted,
    WeightedConfig,
    reward_name,
    score,
    score_batch,
)
from thor.rewards.extract import ExtractionMode, extract_answer
from thor.rewards.functions import (
    CorrectConfig,
    CorrectReward,
    ExecSuccessConfig,
    ExecSuccessReward,
    FormatConfig,
    FormatReward,
    RepetitionConfig,
    RepetitionReward,
    RewardFn,
    ToolCallsConfig,
    ToolCallsReward,
)
from thor.rewards.repetition import has_repetition, max_ngram_count
from thor.rewards.verifier import Verdict, Verifier, VerifierConfig, default_verifier
from thor.types import Episode

__all__ = [
    "CorrectConfig",
    "CorrectReward",
    "ExecSuccessConfig",
    "ExecSuccessReward",
    "ExtractionMode",
    "FormatConfig",
    "FormatReward",
    "RepetitionConfig",
    "RepetitionReward",
    "RewardBreakdown",
    "RewardFn",
    "RewardStats",
    "ThorTrajectoryConfig",
    "ThorTrajectoryReward",
    "ToolCallsConfig",
    "ToolCallsReward",
    "Verdict",
    "Verifier",
    "VerifierConfig",
    "Weighted",
    "WeightedConfig",
    "default_verifier",
    "extract_answer",
    "has_repetition",
    "max_ngram_count",
    "resolve_reward",
    "reward_name",
    "score",
    "score_batch",
]

_SIMPLE = (CorrectReward, FormatReward, RepetitionReward, ExecSuccessReward, ToolCallsReward)
for _cls in _SIMPLE:
    REWARDS.register(_cls.name, config=_cls.config_class, factory=_cls)
for _name in ("thor", "thor_trajectory"):
    REWARDS.register(
        _name,
        config=ThorTrajectoryConfig,
        factory=ThorTrajectoryReward,
        description="THOR's trajectory reward: correct, zeroed when the repetition rule fires",
    )
REWARDS.register(
    "weighted",
    config=WeightedConfig,
    factory=lambda cfg: Weighted(cfg.terms),
    description="A weighted sum of registered rewards, every term reported",
)


def resolve_reward(
    spec: str | Mapping[str, float] | Callable[[Episode], float], **kwargs: Any
) -> Callable[[Episode], float]:
    """A reward function from a registered name, a ``{name: weight}`` mapping, or a callable.

    Args:
        spec: ``"correct"`` (built by :data:`thor.REWARDS` with ``kwargs`` as its config),
            ``{"correct": 1.0, "format": 0.1}`` (a :class:`Weighted`), or a reward function
            (returned as is).
    """
    if isinstance(spec, str):
        return REWARDS.make(spec, **kwargs)
    if isinstance(spec, Mapping):
        if kwargs:
            raise TypeError("keyword arguments apply to a single named reward, not to a mapping")
        terms: dict[str | Callable[[Episode], float], float] = {k: v for k, v in spec.items()}
        return Weighted(terms)
    if callable(spec):
        return spec
    raise TypeError(f"cannot make a reward from {type(spec).__name__}")
