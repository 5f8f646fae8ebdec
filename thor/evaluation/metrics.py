"""Evaluation metrics: Avg@k, unbiased pass@k, and the per-run summary.

Accuracy is thor's rule (the last ``\\boxed{}`` verified against the gold answer). On benchmarks
whose gold answers are plain numbers (GSM8K), the summary also reports GSM8K's usual rule, the
last number in the response (lm-eval's flexible extraction, the registered reward
``gsm8k_last_number``), so a table can stand beside lm-eval's figures.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from thor.types import Episode

__all__ = [
    "EvalSummary",
    "avg_at_k",
    "is_correct",
    "last_number_correct",
    "numeric_answers",
    "pass_at_k",
    "summarize",
]

_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al., 2021).

    Example:
        >>> pass_at_k(4, 1, 1)
        0.25
        >>> pass_at_k(4, 1, 4)
        1.0
    """
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def avg_at_k(per_problem: Sequence[Sequence[bool]]) -> float:
    """Mean accuracy over problems of the mean over each problem's samples."""
    if not per_problem:
        return 0.0
    return sum(sum(s) / len(s) for s in per_problem) / len(per_problem)


def is_correct(episode: Episode) -> bool:
    """Whether the episode's answer was verified correct (the ``correct`` reward term, else the reward)."""
    value = episode.rewards.get("correct", episode.reward)
    return bool(value is not None and value > 0.5)


def numeric_answers(episodes: Iterable[Episode]) -> bool:
    """Whether every gold answer is a plain number (then the last-number rule applies)."""
    golds = [ep.answer for ep in episodes]
    return bool(golds) and all(
        g is not None and _PLAIN_NUMBER.fullmatch(g.strip().replace(",", "")) for g in golds
    )


def last_number_correct(episode: Episode) -> bool:
    """GSM8K's usual rule: the last number the model wrote matches the gold answer (lm-eval)."""
    from thor.registries import REWARDS

    return REWARDS.make("gsm8k_last_number")(episode) > 0.5


class EvalSummary(BaseModel):
    """What `thor eval` reports for one run."""

    model_config = ConfigDict(extra="forbid")

    problems: int
    episodes: int
    samples_per_problem: int
    accuracy: float
    last_number_accuracy: float | None = Field(
        None,
        description="Avg@k by the last number in the response (lm-eval's GSM8K flexible "
        "extraction); None unless every gold answer is a plain number",
    )
    pass_at_k: dict[int, float]
    tool_calls_per_episode: float
    exec_success_rate: float | None
    retries_per_episode: float
    tokens_per_episode: float
    answered_rate: float
    wall_s: float
    errors: int


def _response_tokens(ep: Episode) -> int:
    ids = 0
    for t in ep.turns:
        ids += len(t.token_ids) if t.token_ids is not None else len(t.text)
        ids += (
            len(t.observation_token_ids)
            if t.observation_token_ids is not None
            else len(t.observation)
        )
    return ids


def summarize(episodes: Iterable[Episode], *, wall_s: float = 0.0) -> EvalSummary:
    """Summarise episodes grouped by ``metadata['problem_id']`` (or the episode id)."""
    eps = list(episodes)
    groups: dict[str, list[bool]] = defaultdict(list)
    for ep in eps:
        groups[str(ep.metadata.get("problem_id", ep.id))].append(is_correct(ep))
    n_min = min((len(g) for g in groups.values()), default=0)
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= n_min]
    pk = {k: sum(pass_at_k(len(g), sum(g), k) for g in groups.values()) / len(groups) for k in ks}
    last: float | None = None
    if numeric_answers(eps):
        by_number: dict[str, list[bool]] = defaultdict(list)
        for ep in eps:
            by_number[str(ep.metadata.get("problem_id", ep.id))].append(last_number_correct(ep))
        last = avg_at_k(list(by_number.values()))
    calls = sum(ep.num_calls for ep in eps)
    failed_calls = sum(ep.num_failed_calls for ep in eps)
    n = max(1, len(eps))
    return EvalSummary(
        problems=len(groups),
        episodes=len(eps),
        samples_per_problem=n_min,
        accuracy=avg_at_k(list(groups.values())),
        last_number_accuracy=last,
        pass_at_k=pk,
        tool_calls_per_episode=calls / n,
        exec_success_rate=None if calls == 0 else (calls - failed_calls) / calls,
        retries_per_episode=sum(len(ep.discarded) for ep in eps) / n,
        tokens_per_episode=sum(_response_tokens(ep) for ep in eps) / n,
        answered_rate=sum(ep.final_answer is not None for ep in eps) / n,
        wall_s=wall_s,
        errors=sum(ep.stop_reason.startswith("error") for ep in eps),
    )
