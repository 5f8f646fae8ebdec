from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thor.algos.batch import collate
from thor.algos.step_level import BranchPoint, StepSample, branch_points, cut_before_fence
from thor.testing import tiny_tokenizer
from thor.text.protocol import format_output
from thor.types import DiscardedAttempt, Episode, ExecResult, ToolCall, Turn

TOK = tiny_tokenizer()
OK = ExecResult(status="ok", stdout="42\n")
ERR = ExecResult(status="error", stderr="Traceback...\nZeroDivisionError: division by zero\n")
SILENT = ExecResult(status="ok", stdout="")  # printed nothing: a failed call in THOR

REASONING = [
    "First we need the product of the two numbers, which is large, so let me compute it.\n",
    "Now divide the result by the number of groups to get the share of each group.\n",
    "Check.\n",
]


def _turn(reasoning: str, code: str | None, result: ExecResult | None) -> Turn:
    if code is None:
        text = reasoning
        return Turn(text=text, token_ids=TOK.encode(text))
    text = f"{reasoning}```python\n{code}\n```"
    obs = format_output(result) if result is not None else ""
    return Turn(
        text=text,
        token_ids=TOK.encode(text),
        call=ToolCall(code=code),
        result=result,
        observation=obs,
        observation_token_ids=TOK.encode(obs) if obs else None,
    )


def _episode(*turns: Turn, discarded: list[DiscardedAttempt] | None = None) -> Episode:
    prompt = "<|im_start|>user\nWhat is 6 times 7?<|im_end|>\n<|im_start|>assistant\n"
    return Episode(
        id="ep",
        problem="What is 6 times 7?",
        prompt=prompt,
        prompt_token_ids=TOK.encode(prompt),
        turns=list(turns),
        discarded=discarded or [],
    )


def _fence_tokens(turn: Turn) -> int:
    """Tokens wholly before the fence, counted the slow obvious way."""
    ids = turn.token_ids
    assert ids is not None
    fence_at = turn.text.rindex("```python")
    return max(k for k in range(len(ids) + 1) if len(TOK.decode(ids[:k])) <= fence_at)


def test_cut_lands_before_the_fence_and_drops_exactly_suffix_tokens() -> None:
    turn = _turn(REASONING[0], "print(1 / 0)", ERR)
    ep = _episode(turn)
    [bp] = branch_points(ep, suffix_tokens=5, tokenizer=TOK)
    fence = _fence_tokens(turn)
    assert bp.dropped_tokens == 5
    assert bp.prefix_token_ids == turn.token_ids[: fence - 5]
    assert TOK.decode(bp.prefix_token_ids) == bp.prefix_text
    assert turn.text.startswith(bp.prefix_text + bp.dropped_text)
    assert turn.text[len(bp.prefix_text + bp.dropped_text) :].startswith("```python")
    assert bp.dropped_text == TOK.decode(turn.token_ids[fence - 5 : fence])
    assert "```" not in bp.prefix_text and "```" not in bp.dropped_text
    assert bp.failed_code == "print(1 / 0)" and bp.failed_result == ERR
    assert bp.turn_index == 0 and bp.source == "turn"


def test_suffix_zero_keeps_the_whole_reasoning() -> None:
    turn = _turn(REASONING[0], "print(1 / 0)", ERR)
    [bp] = branch_points(_episode(turn), suffix_tokens=0, tokenizer=TOK)
    assert bp.prefix_text == REASONING[0] and bp.dropped_tokens == 0


def test_short_reasoning_is_cut_to_its_start_never_into_the_observation() -> None:
    first = _turn(REASONING[0], "print(6 * 7)", OK)
    short = _turn(REASONING[2], "print(x)", ERR)
    ep = _episode(first, short)
    [bp] = branch_points(ep, suffix_tokens=200, tokenizer=TOK)
    assert bp.turn_index == 1
    assert bp.prefix_token_ids == [] and bp.prefix_text == ""
    assert bp.dropped_tokens == _fence_tokens(short)
    assert bp.prompt_text.endswith(first.observation)
    assert bp.prompt_token_ids[-len(first.observation_token_ids) :] == first.observation_token_ids


def test_history_is_intact() -> None:
    first = _turn(REASONING[0], "print(6 * 7)", OK)
    second = _turn(REASONING[1], "print(42 / 0)", ERR)
    ep = _episode(first, second)
    [bp] = branch_points(ep, suffix_tokens=3, tokenizer=TOK)
    history_ids = ep.prompt_token_ids + first.token_ids + first.observation_token_ids
    assert bp.history_tokens == len(history_ids)
    assert bp.prompt_token_ids == history_ids + second.token_ids[: len(bp.prefix_token_ids)]
    assert bp.prompt_text == ep.prompt + first.text + first.observation + bp.prefix_text
    assert TOK.decode(bp.prompt_token_ids) == bp.prompt_text


def test_no_branch_for_successful_calls_or_plain_text() -> None:
    ep = _episode(
        _turn(REASONING[0], "print(6 * 7)", OK), _turn("The answer is \\boxed{42}.", None, None)
    )
    assert branch_points(ep, suffix_tokens=4, tokenizer=TOK) == []


def test_several_failed_turns_give_several_branch_points() -> None:
    ep = _episode(
        _turn(REASONING[0], "print(1 / 0)", ERR),
        _turn(REASONING[1], "print(6 * 7)", OK),
        _turn(REASONING[1], "x = 42", SILENT),
        _turn(REASONING[2], "while True: pass", ExecResult(status="timeout")),
        _turn("So \\boxed{42}.", None, None),
    )
    bps = branch_points(ep, suffix_tokens=4, tokenizer=TOK)
    assert [b.turn_index for b in bps] == [0, 2, 3]
    assert [b.failed_code for b in bps] == ["print(1 / 0)", "x = 42", "while True: pass"]
    for b in bps:
        _, ids = ep.prompt, list(ep.prompt_token_ids or [])
        for t in ep.turns[: b.turn_index]:
            ids += (t.token_ids or []) + (t.observation_token_ids or [])
        assert b.history_tokens == len(ids) and b.prompt_token_ids[: len(ids)] == ids


def test_discarded_attempts_can_branch_too() -> None:
    bad = _turn(REASONING[1], "print(y)", ERR)
    good = _turn(REASONING[1], "print(6 * 7)", OK)
    first = _turn(REASONING[0], "print(6)", OK)
    ep = _episode(first, good, discarded=[DiscardedAttempt(turn_index=1, turn=bad)])
    assert branch_points(ep, suffix_tokens=4, tokenizer=TOK) == []
    [bp] = branch_points(ep, suffix_tokens=4, tokenizer=TOK, include_discarded=True)
    assert bp.source == "discarded" and bp.turn_index == 1 and bp.failed_code == "print(y)"
    assert bp.history_tokens == len(ep.prompt_token_ids) + len(first.token_ids) + len(
        first.observation_token_ids
    )


def test_errors() -> None:
    turn = _turn(REASONING[0], "print(1 / 0)", ERR)
    with pytest.raises(ValueError, match="suffix_tokens"):
        branch_points(_episode(turn), suffix_tokens=-1, tokenizer=TOK)
    no_ids = turn.model_copy(update={"token_ids": None})
    with pytest.raises(ValueError, match="no token ids"):
        branch_points(_episode(no_ids), suffix_tokens=2, tokenizer=TOK)
    ep = _episode(turn).model_copy(update={"prompt_token_ids": None})
    with pytest.raises(ValueError, match="prompt_token_ids"):
        branch_points(ep, suffix_tokens=2, tokenizer=TOK)


def test_failed_call_without_a_block_is_skipped() -> None:
    turn = Turn(
        text="no code here",
        token_ids=TOK.encode("no code here"),
        call=ToolCall(code="x"),
        result=ERR,
    )
    assert cut_before_fence(turn, suffix_tokens=1, tokenizer=TOK) is None
    assert branch_points(_episode(turn), suffix_tokens=1, tokenizer=TOK) == []


REASON_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="`"), max_size=80
)


@settings(max_examples=150, deadline=None)
@given(REASON_TEXT, st.integers(min_value=0, max_value=40))
def test_cut_invariants_on_arbitrary_text(reasoning: str, suffix: int) -> None:
    turn = _turn(reasoning, "print(1)", ERR)
    [bp] = branch_points(_episode(turn), suffix_tokens=suffix, tokenizer=TOK)
    assert turn.token_ids is not None
    fence = _fence_tokens(turn)
    n = len(bp.prefix_token_ids)
    assert bp.prefix_token_ids == turn.token_ids[:n]  # the turn's own ids, not a re-tokenisation
    assert TOK.decode(bp.prefix_token_ids) == bp.prefix_text
    assert turn.text.startswith(bp.prefix_text + bp.dropped_text)
    assert n + bp.dropped_tokens == fence
    # at most a split character's worth of extra tokens (UTF-8: up to 3 more bytes) is dropped
    assert max(fence - suffix, 0) - 3 <= n <= max(fence - suffix, 0)
    if reasoning.isascii():  # no character spans several tokens: exactly suffix tokens go
        assert bp.dropped_tokens == min(suffix, fence)


def test_step_sample_to_train_sample_masks_the_prefix() -> None:
    turn = _turn(REASONING[0], "print(1 / 0)", ERR)
    [bp] = branch_points(_episode(turn), suffix_tokens=5, tokenizer=TOK)
    cont = "let me compute it.\n```python\nprint(6 * 7)\n```"
    s = StepSample(
        branch=bp,
        completion_text=cont,
        completion_ids=TOK.encode(cont),
        code="print(6 * 7)",
        result=OK,
    )
    assert s.has_code and s.succeeded
    assert not StepSample(branch=bp, completion_text="", completion_ids=[]).succeeded
    ts = s.to_train_sample(advantage=0.7)
    assert (
        ts.kind == "step"
        and ts.prompt_ids == bp.prompt_token_ids
        and ts.loss_mask == [1] * len(s.completion_ids)
    )
    b = collate([ts], pad_token_id=TOK.pad_token_id)
    assert b.loss_mask[0, : len(bp.prompt_token_ids)].sum() == 0
    assert b.num_loss_tokens == len(s.completion_ids) and b.kind_mask("step").tolist() == [True]
    assert BranchPoint.model_validate_json(bp.model_dump_json()) == bp
