"""Composing rewards, and the one function the env and the trainers call: :func:`score`.

- :class:`Weighted` sums rewards with weights and reports every term;
- :class:`ThorTrajectoryReward` (registered as ``thor`` and ``thor_trajectory``) is THOR's
  trajectory reward: ``correct``, zeroed when the repetition rule fires (THOR-SPEC section 2);
- :func:`score` evaluates any reward on an episode and returns a :class:`RewardBreakdown`. A reward
  that raises is a :class:`~thor.errors.RewardError` naming the reward and the episode, unless the
  caller gives a ``fallback`` value: then the failure is counted in a :class:`RewardStats` and the
  fallback is used for that term.

Example:
    >>> from thor.types import Episode, ExecResult, ToolCall, Turn
    >>> t = Turn(text="```python\\nprint(1)\\n```", call=ToolCall(code="print(1)"),
    ...          result=ExecResult(status="ok", stdout="1\\n"), observation="```output\\n1\\n```\\n")
    >>> ep = Episode(id="e1", problem="?", turns=[t, Turn(text="\\\\boxed{1}")], final_answer="1")
    >>> score(Weighted({"format": 1.0, "tool_calls": 0.5}), ep)
    RewardBreakdown(total=1.5, terms={'format': 1.0, 'tool_calls': 1.0})
    >>> def broken(episode):
    ...     raise KeyError("oops")
    >>> stats = RewardStats()
    >>> score(Weighted({broken: 1.0, "format": 1.0}), ep, fallback=0.0, stats=stats).total
    1.0
    >>> stats.failures
    {'broken': 1}
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from thor.config import ThorConfig, validate_config
from thor.errors import RewardError
from thor.rewards.functions import (
    CorrectConfig,
    CorrectReward,
    RepetitionConfig,
    RepetitionReward,
)
from thor.types import Episode

__all__ = [
    "RewardBreakdown",
    "RewardStats",
    "ThorTrajectoryConfig",
    "ThorTrajectoryReward",
    "Weighted",
    "WeightedConfig",
    "reward_name",
    "score",
    "score_batch",
]

log = logging.getLogger(__name__)

RewardLike = Callable[[Episode], float]


class RewardBreakdown(BaseModel):
    """A reward's total and every term it is made of (raw, unweighted values)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    total: float
    terms: dict[str, float] = Field(default_factory=dict)


class RewardStats:
    """Counts of reward evaluations and failures per reward name (thread-safe).

    Attributes are plain dicts (snapshots): ``calls``, ``failures``, ``last_error``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._last_error: dict[str, str] = {}

    def record(self, name: str, error: BaseException | None = None) -> None:
        with self._lock:
            self._calls[name] = self._calls.get(name, 0) + 1
            if error is not None:
                self._failures[name] = self._failures.get(name, 0) + 1
                self._last_error[name] = f"{type(error).__name__}: {error}"[:500]

    @property
    def calls(self) -> dict[str, int]:
        with self._lock:
            return dict(self._calls)

    @property
    def failures(self) -> dict[str, int]:
        with self._lock:
            return dict(self._failures)

    @property
    def last_error(self) -> dict[str, str]:
        with self._lock:
            return dict(self._last_error)

    def as_metrics(self, prefix: str = "reward") -> dict[str, float]:
        """Flat metrics: ``{prefix}/{name}/calls`` and ``{prefix}/{name}/failures``."""
        with self._lock:
            out: dict[str, float] = {}
            for name, n in self._calls.items():
                out[f"{prefix}/{name}/calls"] = float(n)
                out[f"{prefix}/{name}/failures"] = float(self._failures.get(name, 0))
            return out


def reward_name(fn: Any) -> str:
    """The name a reward's term is reported under: ``fn.name``, else its ``__name__``."""
    name = getattr(fn, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return str(name)


def _evaluate(
    fn: RewardLike, episode: Episode, fallback: float | None, stats: RewardStats | None
) -> float:
    name = reward_name(fn)
    try:
        value = fn(episode)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"returned {type(value).__name__}, not a float")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"returned {value}")
    except RewardError as err:
        if err.reward is None and fallback is None:  # raised inside the reward: name it
            raise RewardError(
                f"reward {name!r} failed on episode {episode.id!r}: {err}",
                reward=name,
                episode_id=episode.id,
            ) from err
        if fallback is None:
            raise
        error: Exception = err
    except Exception as err:  # any failure of user code is reported with its name and episode
        if fallback is None:
            raise RewardError(
                f"reward {name!r} failed on episode {episode.id!r}: {type(err).__name__}: {err}",
                reward=name,
                episode_id=episode.id,
            ) from err
        error = err
    else:
        if stats is not None:
            stats.record(name)
        return value
    if stats is not None:
        stats.record(name, error)
    log.warning(
        "reward %r failed on episode %r (fallback %s): %s", name, episode.id, fallback, error
    )
    return fallback


def score(
    reward_fn: RewardLike,
    episode: Episode,
    *,
    fallback: float | None = None,
    stats: RewardStats | None = None,
) -> RewardBreakdown:
    """Evaluate ``reward_fn`` on ``episode``: the total and every term.

    A plain reward gives one term named after it (:func:`reward_name`); a composite (an object
    with a ``breakdown`` method, such as :class:`Weighted`) gives its own terms.

    Args:
        reward_fn: a :class:`~thor.rewards.RewardFn`, a composite, or any ``episode -> float``.
        episode: the episode to score.
        fallback: ``None`` (default): a failing reward raises :class:`RewardError` (with
            ``.reward`` and ``.episode_id``). A number: that term takes this value instead, and
            the failure is counted in ``stats`` (and logged).
        stats: where calls and failures are counted.
    """
    breakdown = getattr(reward_fn, "breakdown", None)
    if callable(breakdown):
        return breakdown(episode, fallback=fallback, stats=stats)
    value = _evaluate(reward_fn, episode, fallback, stats)
    return RewardBreakdown(total=value, terms={reward_name(reward_fn): value})


def score_batch(
    reward_fn: RewardLike,
    episodes: Sequence[Episode],
    *,
    fallback: float | None = None,
    stats: RewardStats | None = None,
    max_threads: int = 8,
) -> list[RewardBreakdown]:
    """:func:`score` over many episodes, concurrently (verification runs in worker processes)."""
    if len(episodes) <= 1:
        return [score(reward_fn, ep, fallback=fallback, stats=stats) for ep in episodes]
    with ThreadPoolExecutor(max_workers=min(max_threads, len(episodes))) as pool:
        return list(
            pool.map(lambda ep: score(reward_fn, ep, fallback=fallback, stats=stats), episodes)
        )


class WeightedConfig(ThorConfig):
    """A weighted sum of registered rewards, by name (their default configs)."""

    terms: dict[str, float] = Field(description="{reward name: weight}")


class Weighted:
    """The weighted sum of several rewards; :func:`score` reports each term's raw value.

    Args:
        terms: ``{reward: weight}`` where a reward is a registered name (built with its default
            config) or a reward function. Term names must be unique.
        name: this composite's own name (when it is a term of another composite).

    Example:
        >>> Weighted({"format": 0.2, "tool_calls": 0.1}).weights
        {'format': 0.2, 'tool_calls': 0.1}
    """

    def __init__(self, terms: Mapping[str | RewardLike, float], *, name: str = "weighted") -> None:
        from thor.registries import REWARDS

        if not terms:
            raise ValueError("Weighted needs at least one term")
        self.name = name
        self.fns: dict[str, RewardLike] = {}
        self.weights: dict[str, float] = {}
        for key, weight in terms.items():
            fn = REWARDS.make(key) if isinstance(key, str) else key
            term = reward_name(fn)
            if term in self.fns:
                raise ValueError(f"Weighted: two terms are named {term!r}")
            self.fns[term] = fn
            self.weights[term] = float(weight)

    def breakdown(
        self, episode: Episode, *, fallback: float | None = None, stats: RewardStats | None = None
    ) -> RewardBreakdown:
        terms: dict[str, float] = {}
        total = 0.0
        for term, fn in self.fns.items():
            part = score(fn, episode, fallback=fallback, stats=stats)
            terms[term] = part.total
            if getattr(fn, "breakdown", None) is not None:
                terms.update({f"{term}.{k}": v for k, v in part.terms.items()})
            total += self.weights[term] * part.total
        return RewardBreakdown(total=total, terms=terms)

    def __call__(self, episode: Episode) -> float:
        return self.breakdown(episode).total

    def __repr__(self) -> str:
        return f"Weighted({self.weights!r})"


class ThorTrajectoryConfig(ThorConfig):
    """THOR's trajectory reward: correctness, zeroed by the repetition rule."""

    correct: CorrectConfig = Field(default_factory=CorrectConfig)
    repetition: RepetitionConfig = Field(default_factory=RepetitionConfig)


class ThorTrajectoryReward:
    """THOR-SPEC section 2: 1 if the answer is correct, else 0; 0 when the repetition rule fires.

    Terms: ``correct`` (1/0) and ``repetition`` (its penalty when the rule fires, else 0.0).
    """

    name = "thor"

    def __init__(
        self, config: ThorTrajectoryConfig | dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if config is not None and kwargs:
            raise TypeError("pass a config or keyword arguments, not both")
        self.config = validate_config(
            ThorTrajectoryConfig, config if config is not None else kwargs
        )
        self.correct = CorrectReward(self.config.correct)
        self.repetition = RepetitionReward(self.config.repetition)

    def breakdown(
        self, episode: Episode, *, fallback: float | None = None, stats: RewardStats | None = None
    ) -> RewardBreakdown:
        fired = _evaluate(self._fired, episode, fallback, stats) > 0.0
        correct = _evaluate(self.correct, episode, fallback, stats)
        penalty = self.repetition.config.penalty if fired else 0.0
        return RewardBreakdown(
            total=0.0 if fired else correct, terms={"correct": correct, "repetition": penalty}
        )

    def _fired(self, episode: Episode) -> float:
        return 1.0 if self.repetition.fires(episode) else 0.0

    _fired.name = "repetition"  # type: ignore[attr-defined]

    def __call__(self, episode: Episode) -> float:
        return self.breakdown(episode).total

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.config,))

    def __repr__(self) -> str:
        return f"ThorTrajectoryReward({self.config!r})"
