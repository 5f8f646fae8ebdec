"""Choosing among N candidate episodes of one problem: THOR's self-rewarded best-of-N, and voting.

THOR-SPEC section 3: among N candidates, choose the one with the highest execution pass rate (the
share of its tool calls that did not fail); no reward model is involved.

Example:
    >>> from thor.types import Episode, ExecResult, ToolCall, Turn
    >>> ok = Turn(text="", call=ToolCall(code="print(1)"), result=ExecResult(status="ok", stdout="1"))
    >>> bad = Turn(text="", call=ToolCall(code="1/0"), result=ExecResult(status="error"))
    >>> a = Episode(id="a", problem="p", turns=[ok, bad], final_answer="2")
    >>> b = Episode(id="b", problem="p", turns=[ok], final_answer="3")
    >>> select_best_of_n([a, b]).id
    'b'
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

from thor.types import Episode

__all__ = ["execution_pass_rate", "majority_vote", "normalize_answer", "select_best_of_n"]


def execution_pass_rate(episode: Episode) -> float:
    """Share of the episode's tool calls that did not fail (0.0 for an episode without calls)."""
    calls = episode.num_calls
    return 0.0 if calls == 0 else (calls - episode.num_failed_calls) / calls


def normalize_answer(answer: str | None) -> str | None:
    """A light canonical form for grouping answers (spaces, ``\\left``/``\\right``, ``\\dfrac``)."""
    if answer is None:
        return None
    a = re.sub(r"\\left|\\right|\\!|\\,|\\;|\s+", "", answer)
    a = re.sub(r"\\[dt]frac", r"\\frac", a)
    return a.rstrip(".") or None


def majority_vote(
    candidates: Sequence[Episode], *, equal: Callable[[str, str], bool] | None = None
) -> str | None:
    """The most frequent final answer (ties: the earliest); ``equal`` merges equivalent answers.

    Without ``equal``, answers are grouped by :func:`normalize_answer`; with it (e.g. the
    verifier), an answer joins the first group whose representative it equals.
    """
    answers = [c.final_answer for c in candidates if c.final_answer]
    if not answers:
        return None
    if equal is None:
        counts = Counter(normalize_answer(a) for a in answers)
        best = max(counts.values())
        return next(a for a in answers if counts[normalize_answer(a)] == best)
    groups: list[list[str]] = []
    for a in answers:
        for g in groups:
            if equal(g[0], a):
                g.append(a)
                break
        else:
            groups.append([a])
    return max(groups, key=len)[0]


def select_best_of_n(candidates: Sequence[Episode], *, tie_break: str = "majority") -> Episode:
    """THOR's self-rewarded best-of-N: the candidate with the highest execution pass rate.

    Ties are broken by majority vote among the tied candidates' answers (``tie_break="majority"``)
    or by order (``"first"``). Candidates without an answer lose ties.

    Raises:
        ValueError: no candidates.
    """
    if not candidates:
        raise ValueError("best-of-N needs at least one candidate")
    rates = [execution_pass_rate(c) for c in candidates]
    top = max(rates)
    tied = [c for c, r in zip(candidates, rates, strict=True) if r == top]
    answered = [c for c in tied if c.final_answer] or tied
    if tie_break == "first" or len(answered) == 1:
        return answered[0]
    vote = normalize_answer(majority_vote(answered))
    return next(c for c in answered if normalize_answer(c.final_answer) == vote)
