"""The TIR loop, the batched engine and THOR self-correction, with the real sandbox and verifier."""

from __future__ import annotations

import pytest

from thor.agents import RolloutConfig, RolloutEngine, RolloutTask, run_agent
from thor.agents.backtrack import cut_before_call
from thor.testing import ScriptedPolicy
from thor.types import Problem

pytestmark = pytest.mark.timeout(300)
F = "```"


def problems(n: int = 3) -> list[Problem]:
    return [Problem(id=f"p{i}", problem=f"What is {i} + 40?", answer=str(i + 40)) for i in range(n)]


def tir_script(prompt: str) -> str:
    """Turn 1 computes with python; turn 2 (after the output) answers from the output."""
    if prompt.endswith("assistant\n"):
        n = int(prompt.split("What is ")[-1].split(" ")[0])
        return f"Let me add.\n{F}python\nx = {n} + 40\nprint(x)\n{F}\nignored tail"
    value = prompt.rsplit(f"{F}output\n", 1)[1].split("\n", 1)[0]
    return f"The sum is \\boxed{{{value}}}."


def test_tir_loop_runs_code_and_answers() -> None:
    policy = ScriptedPolicy(tir_script)
    eps = run_agent(policy, problems(3), RolloutConfig(agent="tir"))
    assert [e.id for e in eps] == ["p0#0", "p1#0", "p2#0"]
    for i, ep in enumerate(eps):
        assert ep.reward == 1.0 and ep.final_answer == str(i + 40) and ep.terminated
        first = ep.turns[0]
        assert (
            first.text.endswith(F) and "ignored tail" not in first.text
        )  # stopped at the closing fence
        assert first.result is not None and first.result.stdout.strip() == str(i + 40)
        assert first.observation == f"\n{F}output\n{i + 40}\n{F}\n"
        ids, mask = ep.token_sequence()  # token ids are the record of truth
        assert policy.decode(ids) == ep.response_text()
        assert sum(mask) == sum(len(t.token_ids or []) for t in ep.turns)
        assert ep.prompt_token_ids and policy.decode(ep.prompt_token_ids) == ep.prompt


def test_cot_agent_never_calls_tools() -> None:
    policy = ScriptedPolicy(lambda p: f"{F}python\nprint(1)\n{F}\nSo \\boxed{{40}}.")
    [ep] = run_agent(policy, problems(1), RolloutConfig(agent="cot"))
    assert ep.num_calls == 0 and ep.reward == 1.0 and len(ep.turns) == 1


def test_engine_batches_keep_order_and_report_each_episode() -> None:
    seen: list[str] = []
    tasks = [RolloutTask(problem=p, sample=s) for p in problems(5) for s in range(3)]
    cfg = RolloutConfig(agent="tir", batch_size=4, cohorts=2)
    with RolloutEngine(ScriptedPolicy(tir_script), cfg) as engine:
        eps = engine.run(tasks, on_episode=lambda e: seen.append(e.id))
        assert engine.stats.episodes == 15 and engine.stats.generate_calls >= 8
    assert [e.id for e in eps] == [t.episode_id for t in tasks]
    assert sorted(seen) == sorted(t.episode_id for t in tasks)
    with pytest.raises(ValueError, match="unique"):
        RolloutEngine(ScriptedPolicy(tir_script), cfg).run([tasks[0], tasks[0]])


def test_budgets_end_runaway_models() -> None:
    never_closes = ScriptedPolicy(lambda p: f"{F}python\n" + "x = 1\n" * 5000)
    [ep] = run_agent(
        never_closes, problems(1), RolloutConfig(agent="tir", env={"max_response_tokens": 300})
    )
    assert (
        ep.truncated and ep.stop_reason == "max_tokens" and ep.num_calls == 0 and ep.reward == 0.0
    )
    loops = ScriptedPolicy(lambda p: f"again\n{F}python\nprint(1)\n{F}")
    [ep] = run_agent(loops, problems(1), RolloutConfig(agent="tir", env={"max_rounds": 3}))
    assert ep.truncated and ep.stop_reason == "max_rounds" and ep.num_calls == 3


def test_code_inside_think_runs() -> None:
    def script(prompt: str) -> str:
        if prompt.endswith("assistant\n"):
            return f"<think>check it\n{F}python\nprint(2 + 40)\n{F}"
        return "so 42</think> The answer is \\boxed{42}."

    [ep] = run_agent(
        ScriptedPolicy(script),
        [Problem(id="t", problem="2+40?", answer="42")],
        RolloutConfig(agent="tir"),
    )
    assert ep.num_calls == 1 and ep.reward == 1.0


# -- THOR self-correction ------------------------------------------------------------------------------


def correcting_script(fail_times: int):
    attempts = {"n": 0}

    def script(prompt: str) -> str:
        if prompt.rstrip().endswith(F) and f"{F}output" in prompt.rsplit("assistant", 1)[-1]:
            return "Done: \\boxed{42}."
        attempts["n"] += 1
        if attempts["n"] <= fail_times:  # sets state, then fails: the rollback must undo it
            return f" step {attempts['n']}.\n{F}python\nleaked = 1\nprint(1 / 0)\n{F}"
        return f" step {attempts['n']}.\n{F}python\nprint('leaked' in dir(), 6 * 7)\n{F}"

    return script, attempts


def test_self_correction_discards_failed_calls_and_rolls_back_state() -> None:
    script, attempts = correcting_script(fail_times=2)
    cfg = RolloutConfig(agent={"name": "thor", "backtrack_tokens": 3, "max_retries": 4})
    [ep] = run_agent(
        ScriptedPolicy(script), [Problem(id="q", problem="Reason step by step.", answer="42")], cfg
    )
    assert attempts["n"] == 3
    assert len(ep.discarded) == 2 and [d.retry for d in ep.discarded] == [1, 2]
    assert all(
        d.turn.failed_call and "ZeroDivisionError" in d.turn.result.stderr for d in ep.discarded
    )
    assert ep.num_calls == 1 and not ep.turns[0].failed_call
    assert ep.turns[0].result.stdout.strip() == "False 42"  # the failed cells' state is gone
    assert ep.reward == 1.0
    kept = ep.discarded[0]
    assert ep.turns[0].text.startswith(kept.kept_text)  # the retry continued from the kept prefix


def test_self_correction_gives_up_after_max_retries_and_keeps_the_failure() -> None:
    script, attempts = correcting_script(fail_times=100)
    cfg = RolloutConfig(agent={"name": "thor", "max_retries": 4}, env={"max_rounds": 1})
    [ep] = run_agent(ScriptedPolicy(script), problems(1), cfg)
    assert (
        len(ep.discarded) == 4 and ep.turns[0].failed_call
    )  # 4 retries, then the 5th failure is kept
    assert attempts["n"] >= 5


def test_cut_before_call_in_tokens() -> None:
    policy = ScriptedPolicy(["x"])
    text = f"one two three four\n{F}python\nprint(1)\n{F}"
    ids = policy.encode(text)
    from thor.types import Turn

    turn = Turn(text=text, token_ids=ids, logprobs=[-0.1] * len(ids))
    whole = cut_before_call(turn, 0, policy.decode)
    assert whole.text == "one two three four\n" and whole.dropped_tokens == 0
    cut = cut_before_call(turn, 2, policy.decode)
    assert whole.text.startswith(cut.text) and len(cut.token_ids) == len(whole.token_ids) - 2
    assert cut.logprobs == [-0.1] * len(cut.token_ids)
    assert cut_before_call(turn, 10_000, policy.decode).token_ids == []


@pytest.mark.parametrize("agent", ["tir", "thor"])
def test_an_episode_cut_off_right_after_a_call_has_the_observation_tokens(agent: str) -> None:
    """The budget runs out at the tool call: the episode ends with the call's output, and its token
    sequence (what training sees) still covers every character of the text."""
    policy = ScriptedPolicy(lambda p: f"Add.\n{F}python\nprint(40 + 2)\n{F}")
    first_turn = len(policy.encode(f"Add.\n{F}python\nprint(40 + 2)\n{F}"))
    cfg = RolloutConfig(agent=agent, env={"max_response_tokens": first_turn})
    [ep] = run_agent(policy, problems(1), cfg)
    assert ep.truncated and ep.turns[-1].observation == f"\n{F}output\n42\n{F}\n"
    ids, mask = ep.token_sequence()
    assert policy.decode(ids) == ep.response_text()
    assert sum(mask) == sum(len(t.token_ids or []) for t in ep.turns)
