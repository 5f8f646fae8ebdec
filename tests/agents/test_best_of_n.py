from __future__ import annotations

import pytest

from thor.agents import execution_pass_rate, majority_vote, select_best_of_n
from thor.agents.best_of_n import normalize_answer
from thor.types import Episode, ExecResult, ToolCall, Turn

OK = Turn(text="", call=ToolCall(code="print(1)"), result=ExecResult(status="ok", stdout="1"))
BAD = Turn(text="", call=ToolCall(code="1/0"), result=ExecResult(status="error"))


def ep(i: str, turns: list[Turn], answer: str | None) -> Episode:
    return Episode(id=i, problem="p", turns=turns, final_answer=answer)


def test_pass_rate() -> None:
    assert execution_pass_rate(ep("a", [OK, BAD], "1")) == 0.5
    assert execution_pass_rate(ep("a", [], "1")) == 0.0


def test_best_of_n_prefers_code_that_ran_then_votes() -> None:
    cands = [
        ep("a", [OK, BAD], "3"),
        ep("b", [OK], "\\frac{1}{2}"),
        ep("c", [OK, OK], "\\dfrac{1}{2}"),
        ep("d", [OK], "5"),
    ]
    best = select_best_of_n(cands)
    assert best.id in {"b", "c"}  # both run every call; "1/2" wins the vote among the tied
    assert select_best_of_n(cands, tie_break="first").id == "b"
    with pytest.raises(ValueError):
        select_best_of_n([])


def test_majority_vote() -> None:
    cands = [ep("a", [], "2"), ep("b", [], " 2 "), ep("c", [], "3"), ep("d", [], None)]
    assert majority_vote(cands) == "2"
    assert majority_vote([ep("x", [], None)]) is None
    assert majority_vote(cands, equal=lambda a, b: a.strip() == b.strip()) == "2"
    assert normalize_answer("\\left( 1, 2 \\right).") == "(1,2)"
