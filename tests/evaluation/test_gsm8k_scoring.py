"""GSM8K's usual scoring beside thor's boxed rule: the last number in the response (lm-eval's
flexible extraction), as a registered reward and in `thor eval`'s summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from thor.evaluation import EvalConfig, evaluate, summarize, summary_table
from thor.registries import REWARDS
from thor.rewards.gsm8k import INVALID, LastNumberReward, last_number, lm_eval_match
from thor.testing import ScriptedPolicy
from thor.types import Episode, ExecResult, ToolCall, Turn

F = "```"


def ep(text: str, answer: str = "72", *, observation: str = "") -> Episode:
    return Episode(
        id="e", problem="?", answer=answer, turns=[Turn(text=text, observation=observation)]
    )


@pytest.mark.parametrize(
    ("text", "gold", "right"),
    [
        ("48 + 24 = 72 clips.", "72", True),
        ("She pays $1,200.", "1200", True),  # commas, dollar sign and the final period dropped
        ("So \\boxed{72} after 3 steps", "72", False),  # the LAST number is 3
        ("It is 72.0", "72", False),  # strings compare, as in lm-eval
        ("The answer is -5", "-5", True),
        ("#### 18", "18", True),
        ("no number at all", "1", False),
    ],
)
def test_lm_eval_flexible_extraction(text: str, gold: str, right: bool) -> None:
    assert LastNumberReward()(ep(text, gold)) == (1.0 if right else 0.0)


def test_no_number_is_invalid() -> None:
    assert last_number("none here") == INVALID and not lm_eval_match(INVALID, "1")


@given(st.text(alphabet="abc +=*\n", max_size=80), st.integers(-(10**6), 10**6))
def test_a_final_number_is_read_whatever_comes_before(prefix: str, n: int) -> None:
    assert LastNumberReward()(ep(f"{prefix} The answer is {n:,}.", str(n))) == 1.0


def test_tool_outputs_are_not_the_models_text() -> None:
    e = ep("Let me compute.", observation="```output\n72\n```\n")
    assert LastNumberReward()(e) == 0.0
    assert LastNumberReward(include_observations=True)(e) == 1.0


def test_registered_with_its_config() -> None:
    assert "gsm8k_last_number" in REWARDS
    assert REWARDS.make("gsm8k_last_number", include_observations=True).config.include_observations


def test_the_summary_reports_both_rules_on_numeric_answers_only() -> None:
    boxed = Episode(
        id="a",
        problem="?",
        answer="5",
        turns=[Turn(text="\\boxed{5}")],
        final_answer="5",
        rewards={"correct": 1.0},
    )
    plain = Episode(
        id="b", problem="?", answer="7", turns=[Turn(text="so 7")], rewards={"correct": 0.0}
    )
    s = summarize([boxed, plain])
    assert s.accuracy == 0.5 and s.last_number_accuracy == 1.0
    latex = boxed.model_copy(update={"answer": "\\frac{1}{2}"})
    assert summarize([latex]).last_number_accuracy is None
    out = Console(width=200, record=True)
    out.print(summary_table({"run": s}))
    text = out.export_text()
    assert "accuracy (boxed, thor)" in text and "accuracy (last number, lm-eval)" in text


def test_thor_eval_on_a_gsm8k_style_benchmark_reports_both(tmp_path: Path) -> None:
    bench = tmp_path / "gsm.jsonl"
    bench.write_text(
        "".join(
            json.dumps({"id": f"g{i}", "problem": f"What is {i} + 40?", "answer": str(i + 40)})
            + "\n"
            for i in range(4)
        )
    )

    def script(prompt: str) -> str:  # boxes only even problems; always ends with the number
        n = int(prompt.split("What is ")[-1].split(" ")[0])
        return f"{n} + 40 = {n + 40}" + (
            f", so \\boxed{{{n + 40}}}. That is {n + 40}" if n % 2 == 0 else "."
        )

    s = evaluate(
        EvalConfig(
            benchmark=str(bench), agent="cot", k=1, out=tmp_path / "o.jsonl", progress=False
        ),
        policy=ScriptedPolicy(script),
    )
    assert s.accuracy == 0.5 and s.last_number_accuracy == 1.0


def test_a_tool_call_turn_is_scored_on_the_models_words() -> None:
    call = Turn(
        text=f"{F}python\nprint(6 * 12)\n{F}",
        call=ToolCall(code="print(6 * 12)"),
        result=ExecResult(status="ok", stdout="72\n"),
        observation=f"{F}output\n72\n{F}\n",
    )
    e = Episode(id="e", problem="?", answer="72", turns=[call, Turn(text="So she has 72 eggs.")])
    assert LastNumberReward()(e) == 1.0
