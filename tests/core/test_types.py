from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from thor.types import Completion, DiscardedAttempt, Episode, ExecResult, ToolCall, Turn, failed


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (ExecResult(status="ok", stdout="4\n"), False),
        (ExecResult(status="ok", stdout=""), True),
        (ExecResult(status="ok", stdout="  \n\t"), True),
        (ExecResult(status="error", stdout="4\n", stderr="ValueError"), True),
        (ExecResult(status="timeout", stdout="partial"), True),
        (ExecResult(status="killed", reason="killed by SIGSEGV"), True),
        (ExecResult(status="sandbox_error", reason="template died"), True),
        (None, True),
    ],
)
def test_failed(result: ExecResult | None, expected: bool) -> None:
    assert failed(result) is expected


def test_exec_result_is_frozen_and_strict() -> None:
    r = ExecResult(status="ok", stdout="1")
    with pytest.raises(ValidationError):
        r.stdout = "2"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        ExecResult(status="weird")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ExecResult(status="ok", extra_field=1)  # type: ignore[call-arg]


def _episode() -> Episode:
    ok = ExecResult(status="ok", stdout="4\n")
    bad = ExecResult(status="error", stderr="NameError: name 'y' is not defined")
    return Episode(
        id="e1",
        problem="2+2?",
        answer="4",
        prompt="<prompt>",
        prompt_token_ids=[1, 2],
        turns=[
            Turn(
                text="a```python\nprint(y)\n```",
                token_ids=[10, 11],
                call=ToolCall(code="print(y)"),
                result=bad,
                observation="```output\nNameError\n```\n",
                observation_token_ids=[90],
            ),
            Turn(
                text="b```python\nprint(2+2)\n```",
                token_ids=[12, 13, 14],
                call=ToolCall(code="print(2+2)"),
                result=ok,
                observation="```output\n4\n```\n",
                observation_token_ids=[91, 92],
            ),
            Turn(text=r"so \boxed{4}", token_ids=[15]),
        ],
        discarded=[
            DiscardedAttempt(
                turn_index=1,
                turn=Turn(text="x", call=ToolCall(code="1/0"), result=ExecResult(status="error")),
            )
        ],
        final_answer="4",
        rewards={"correct": 1.0},
        reward=1.0,
        terminated=True,
        metadata={"source": "test", "index": 3},
    )


def test_episode_round_trips_json_and_pickle() -> None:
    ep = _episode()
    assert Episode.model_validate_json(ep.model_dump_json()) == ep
    assert pickle.loads(pickle.dumps(ep)) == ep


def test_episode_counts_and_token_sequence() -> None:
    ep = _episode()
    assert ep.num_calls == 2 and ep.num_failed_calls == 1
    assert ep.turns[0].failed_call and not ep.turns[1].failed_call and not ep.turns[2].failed_call
    ids, mask = ep.token_sequence()
    assert ids == [10, 11, 90, 12, 13, 14, 91, 92, 15]
    assert mask == [1, 1, 0, 1, 1, 1, 0, 0, 1]
    assert ep.response_text().startswith("a```python") and ep.response_text().endswith(r"\boxed{4}")


def test_token_sequence_requires_ids() -> None:
    ep = Episode(id="e", problem="p", turns=[Turn(text="t")])
    with pytest.raises(ValueError, match="no token ids"):
        ep.token_sequence()
    ep2 = Episode(id="e", problem="p", turns=[Turn(text="t", token_ids=[1], observation="o")])
    with pytest.raises(ValueError, match="observation without token ids"):
        ep2.token_sequence()


@given(text=st.text(), ids=st.lists(st.integers(0, 2**31)))
def test_completion_round_trip(text: str, ids: list[int]) -> None:
    c = Completion(text=text, token_ids=ids, logprobs=[-0.5] * len(ids), finish_reason="length")
    assert Completion.model_validate_json(c.model_dump_json()) == c
