"""Reward functions, composites, score(), errors and fallbacks, and the registry."""

from __future__ import annotations

import pickle
import time

import pytest

import thor
from thor.errors import ConfigError, RewardError, UnknownNameError
from thor.rewards import (
    CorrectReward,
    ExecSuccessReward,
    FormatReward,
    RepetitionReward,
    RewardBreakdown,
    RewardFn,
    RewardStats,
    ThorTrajectoryReward,
    ToolCallsReward,
    Weighted,
    has_repetition,
    max_ngram_count,
    resolve_reward,
    score,
    score_batch,
)
from thor.types import Episode, ExecResult, ToolCall, Turn

OK = ExecResult(status="ok", stdout="1024\n")
NOTHING = ExecResult(status="ok", stdout="")
ERROR = ExecResult(status="error", stderr="ZeroDivisionError: division by zero")


def code_turn(result: ExecResult | None, code: str = "print(2**10)") -> Turn:
    obs = "```output\n" + (result.stdout if result else "") + "```\n"
    return Turn(
        text=f"Let me compute.\n```python\n{code}\n```",
        call=ToolCall(code=code),
        result=result,
        observation=obs,
    )


def episode(
    *turns: Turn, answer: str | None = "1024", final: str | None = None, eid: str = "ep-1"
) -> Episode:
    return Episode(
        id=eid, problem="What is 2^10?", answer=answer, turns=list(turns), final_answer=final
    )


ANSWER = Turn(text="So the answer is \\boxed{1024}.")


# -- correct --------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_correct_uses_final_answer_or_extracts_strictly() -> None:
    fn = CorrectReward()
    assert fn(episode(ANSWER, final="1024")) == 1.0
    assert fn(episode(ANSWER, final="2^{10}")) == 1.0
    assert fn(episode(ANSWER, final="1025")) == 0.0
    assert fn(episode(ANSWER)) == 1.0  # no final_answer: extracted from the response (boxed)
    assert fn(episode(Turn(text="The answer is 1024."))) == 0.0  # strict by default
    assert CorrectReward(mode="lenient")(episode(Turn(text="The answer is 1024."))) == 1.0
    assert fn.verdict(episode(Turn(text="no answer"))).reason.startswith("refused")


@pytest.mark.timeout(60)
def test_correct_without_gold_is_a_reward_error() -> None:
    with pytest.raises(RewardError, match="no gold answer") as info:
        score(CorrectReward(), episode(ANSWER, answer=None, eid="ep-9"))
    assert info.value.reward == "correct" and info.value.episode_id == "ep-9"


@pytest.mark.timeout(60)
def test_correct_with_its_own_verifier_config() -> None:
    fn = thor.REWARDS.make("correct", verifier={"workers": 1, "timeout_s": 3.0})
    try:
        assert fn.verifier.config.timeout_s == 3.0 and fn(episode(ANSWER, final="1024")) == 1.0
    finally:
        fn.close()
    with pytest.raises(RewardError, match="closed") as info:
        score(fn, episode(ANSWER, final="1025"))
    assert info.value.reward == "correct" and info.value.episode_id == "ep-1"


# -- format ---------------------------------------------------------------------------------------
def test_format_accepts_a_well_formed_protocol() -> None:
    assert FormatReward()(episode(code_turn(OK), ANSWER)) == 1.0
    assert FormatReward()(episode(ANSWER)) == 1.0  # no code at all is fine


def test_format_rejects_broken_protocols() -> None:
    fn = FormatReward()
    unclosed = Turn(text="```python\nprint(1)\n")
    assert fn.problems(episode(unclosed, ANSWER)) == ["python block 0 is not closed"]
    no_output = Turn(text="```python\nprint(1)\n```\nand then", call=None)
    assert "not followed by an output block" in fn.problems(episode(no_output, ANSWER))[0]
    fake = Turn(text="```python\nprint(1)\n```\n```output\n1\n```\n\\boxed{1}")
    assert "the model wrote an output block itself" in fn.problems(episode(fake))
    assert fn.problems(episode(code_turn(OK))) == ["no answer"]
    assert fn(episode(code_turn(OK))) == 0.0
    assert FormatReward(require_answer=False)(episode(code_turn(OK))) == 1.0


def test_format_reads_the_models_text_not_tool_output() -> None:
    # The code prints fences (a closed python block, then an unclosed one): the model's protocol
    # is well formed, and what a tool prints is not the model's writing.
    printed = ExecResult(status="ok", stdout="```python\nx = 1\n```\ndone\n```python\n")
    ep = episode(code_turn(printed, code="print(listing)"), ANSWER)
    assert FormatReward().problems(ep) == []
    assert FormatReward()(ep) == 1.0


@pytest.mark.timeout(60)
def test_a_box_printed_by_code_is_not_the_models_answer() -> None:
    boxed = ExecResult(status="ok", stdout="\\boxed{1024}\n")
    ep = episode(code_turn(boxed), Turn(text="I am not sure."))
    assert FormatReward().problems(ep) == ["no answer"]
    assert CorrectReward().answer(ep) is None
    assert CorrectReward()(ep) == 0.0


# -- repetition -----------------------------------------------------------------------------------
def test_repetition_rule() -> None:
    line = "I am not sure, let me try the same computation again. "  # 54 characters
    assert RepetitionReward()(episode(Turn(text=line * 21))) == -1.0
    assert RepetitionReward()(episode(Turn(text=line * 19))) == 0.0
    assert RepetitionReward(max_repeats=5, penalty=-0.5)(episode(Turn(text=line * 7))) == -0.5
    assert RepetitionReward(ngram=20)(episode(Turn(text="abcdefghij" * 30))) == -1.0
    # tool outputs are not the model's text unless asked
    noisy = Turn(
        text="x", call=ToolCall(code="print('ab'*500)"), result=OK, observation="ab" * 2000
    )
    assert RepetitionReward()(episode(noisy)) == 0.0
    assert RepetitionReward(include_observations=True)(episode(noisy)) == -1.0


def test_repetition_counts_overlaps_exactly() -> None:
    assert max_ngram_count("aaaa", 2) == 3
    assert max_ngram_count("abc", 5) == 0
    text = "x" * 70  # 21 occurrences of the 50-character n-gram
    assert has_repetition(text) and not has_repetition(text[:-1])


@pytest.mark.timeout(30)
def test_repetition_is_fast_on_20k_characters() -> None:
    import random

    rng = random.Random(0)
    text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ,.") for _ in range(20_000))
    start = time.perf_counter()
    for _ in range(10):
        assert not has_repetition(text)
    per_call = (time.perf_counter() - start) / 10
    assert per_call < 0.5, per_call  # a few ms here; generous for a loaded machine


# -- exec_success and tool_calls ------------------------------------------------------------------
def test_exec_success_uses_thor_failed() -> None:
    fn = ExecSuccessReward()
    assert fn(episode(code_turn(OK))) == 1.0
    assert fn(episode(code_turn(ERROR))) == 0.0
    assert fn(episode(code_turn(NOTHING))) == 0.0  # printing nothing is a failed call
    assert fn(episode(code_turn(None))) == 0.0
    assert fn(episode(code_turn(ERROR), code_turn(OK))) == 1.0  # the step's call is the last one
    assert ExecSuccessReward(aggregate="all")(episode(code_turn(ERROR), code_turn(OK))) == 0.0
    assert ExecSuccessReward(aggregate="mean")(
        episode(code_turn(ERROR), code_turn(OK), code_turn(OK))
    ) == pytest.approx(2 / 3)
    assert fn(episode(ANSWER)) == 0.0
    assert ExecSuccessReward(no_call_value=-1.0)(episode(ANSWER)) == -1.0


def test_tool_calls() -> None:
    ep = episode(code_turn(OK), code_turn(ERROR), code_turn(OK), ANSWER)
    assert ToolCallsReward()(ep) == 3.0
    assert ToolCallsReward(successful_only=True)(ep) == 2.0
    assert ToolCallsReward(cap=1)(ep) == 1.0
    assert ToolCallsReward(mode="bonus", bonus=0.25)(ep) == 0.25
    assert ToolCallsReward(mode="bonus")(episode(ANSWER)) == 0.0


# -- composites and score -------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_weighted_reports_every_term() -> None:
    fn = Weighted({"correct": 1.0, "format": 0.5, "tool_calls": 0.1})
    bd = score(fn, episode(code_turn(OK), ANSWER, final="1024"))
    assert bd == RewardBreakdown(
        total=1.0 + 0.5 + 0.1, terms={"correct": 1.0, "format": 1.0, "tool_calls": 1.0}
    )
    assert fn(episode(code_turn(OK), ANSWER, final="1024")) == pytest.approx(1.6)


def test_plain_reward_gives_one_term_named_after_it() -> None:
    def bonus(ep: Episode) -> float:
        return 0.5

    assert score(bonus, episode(ANSWER)) == RewardBreakdown(total=0.5, terms={"bonus": 0.5})
    assert score(ToolCallsReward(), episode(ANSWER)).terms == {"tool_calls": 0.0}


@pytest.mark.timeout(60)
def test_thor_trajectory_reward_is_correct_zeroed_by_repetition() -> None:
    fn = thor.REWARDS.make("thor")
    good = episode(ANSWER, final="1024")
    assert score(fn, good) == RewardBreakdown(total=1.0, terms={"correct": 1.0, "repetition": 0.0})
    looping = episode(
        Turn(text="wait, let me recompute this carefully once more... " * 25 + "\\boxed{1024}"),
        final="1024",
    )
    assert score(fn, looping) == RewardBreakdown(
        total=0.0, terms={"correct": 1.0, "repetition": -1.0}
    )
    assert score(fn, episode(ANSWER, final="7")).total == 0.0
    assert isinstance(thor.REWARDS.make("thor_trajectory"), ThorTrajectoryReward)


@pytest.mark.timeout(60)
def test_nested_composite_terms_are_prefixed() -> None:
    fn = Weighted({"thor": 1.0, "format": 0.1})
    bd = score(fn, episode(ANSWER, final="1024"))
    assert bd.terms == {"thor": 1.0, "thor.correct": 1.0, "thor.repetition": 0.0, "format": 1.0}
    assert bd.total == pytest.approx(1.1)


def boom(ep: Episode) -> float:
    raise KeyError("no such field")


def test_a_raising_reward_is_a_reward_error_by_default() -> None:
    with pytest.raises(RewardError, match=r"reward 'boom' failed on episode 'ep-7'") as info:
        score(Weighted({boom: 1.0, "format": 1.0}), episode(ANSWER, eid="ep-7"))
    assert info.value.reward == "boom" and info.value.episode_id == "ep-7"
    assert isinstance(info.value.__cause__, KeyError)
    clone = pickle.loads(pickle.dumps(info.value))
    assert clone.reward == "boom" and clone.episode_id == "ep-7"


def test_a_fallback_is_used_and_counted() -> None:
    stats = RewardStats()
    fn = Weighted({boom: 2.0, "format": 1.0})
    for _ in range(3):
        bd = score(fn, episode(ANSWER), fallback=-0.5, stats=stats)
        assert bd == RewardBreakdown(total=2.0 * -0.5 + 1.0, terms={"boom": -0.5, "format": 1.0})
    assert stats.failures == {"boom": 3} and stats.calls == {"boom": 3, "format": 3}
    assert "KeyError" in stats.last_error["boom"]
    assert stats.as_metrics()["reward/boom/failures"] == 3.0


def test_non_numbers_and_nan_are_failures() -> None:
    def text(ep: Episode) -> float:
        return "1"  # type: ignore[return-value]

    def nan(ep: Episode) -> float:
        return float("nan")

    for fn in (text, nan):
        with pytest.raises(RewardError):
            score(fn, episode(ANSWER))
        assert score(fn, episode(ANSWER), fallback=0.0).total == 0.0


@pytest.mark.timeout(60)
def test_score_batch() -> None:
    eps = [episode(ANSWER, final=str(1020 + i), eid=f"e{i}") for i in range(8)]
    totals = [bd.total for bd in score_batch(resolve_reward("correct"), eps)]
    assert totals == [1.0 if i == 4 else 0.0 for i in range(8)]


# -- registry and resolution ----------------------------------------------------------------------
def test_registered_names_and_configs() -> None:
    names = set(thor.REWARDS.names())
    assert {
        "correct",
        "format",
        "repetition",
        "exec_success",
        "tool_calls",
        "thor",
        "thor_trajectory",
        "weighted",
    } <= names
    for name in ("correct", "format", "repetition", "exec_success", "tool_calls", "thor"):
        assert isinstance(thor.REWARDS.make(name), RewardFn) or hasattr(
            thor.REWARDS.make(name), "breakdown"
        )
    with pytest.raises(ConfigError, match="did you mean 'ngram'"):
        thor.REWARDS.make("repetition", ngrams=3)
    with pytest.raises(UnknownNameError, match="did you mean 'correct'"):
        thor.REWARDS.make("corect")


def test_resolve_reward() -> None:
    assert resolve_reward("format").name == "format"
    assert resolve_reward("repetition", ngram=10).config.ngram == 10
    w = resolve_reward({"format": 1.0, "tool_calls": 0.5})
    assert isinstance(w, Weighted) and w.weights == {"format": 1.0, "tool_calls": 0.5}
    assert thor.REWARDS.make("weighted", terms={"format": 2.0}).weights == {"format": 2.0}
    assert resolve_reward(boom) is boom
    with pytest.raises(ValueError, match="two terms"):
        Weighted({"format": 1.0, FormatReward(): 2.0})
    with pytest.raises(TypeError):
        resolve_reward(3)  # type: ignore[arg-type]


def test_rewards_pickle_as_their_configs() -> None:
    for fn in (CorrectReward(mode="lenient"), RepetitionReward(ngram=7), ThorTrajectoryReward()):
        clone = pickle.loads(pickle.dumps(fn))
        assert type(clone) is type(fn) and clone.config == fn.config
