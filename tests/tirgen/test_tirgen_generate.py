"""The actor-critic loop with a scripted actor and real sandbox execution."""

from __future__ import annotations

import pytest
from tirgen_fakes import FixedCritic, ScriptedCriticPolicy, SolutionActor, code_after_first_line

from thor.data.synthetic import generate_problems
from thor.data.tirgen import (
    AttemptResult,
    CriticResult,
    LLMCritic,
    Part,
    ProblemOutcome,
    RuleCritic,
    TirgenConfig,
    TirGenerator,
    check_format,
)
from thor.data.tirgen.text import text_of_parts
from thor.types import Problem

pytestmark = pytest.mark.timeout(120)


def config(**kw: object) -> TirgenConfig:
    base: dict[str, object] = {
        "out": "unused",
        "step_tokens": 64,
        "attempts": 1,
        "max_response_tokens": 4000,
    }
    base.update(kw)
    return TirgenConfig(**base)


def run(
    actor: SolutionActor, critic: object, problems: list[Problem], judge=None, **kw: object
) -> list[ProblemOutcome]:
    outcomes: list[ProblemOutcome] = []
    with TirGenerator(actor, critic, config(**kw), judge=judge) as gen:  # type: ignore[arg-type]
        gen.run(problems, outcomes.append)
    return outcomes


class RecordingCritic:
    """The rule critic, recording every step it is shown."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.inner = RuleCritic()

    def rewrite(self, step: str) -> CriticResult:
        self.seen.append(step)
        return self.inner.rewrite(step)


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    return generate_problems(6, seed=3, families=["arithmetic", "modular"])


def test_steps_are_batched_and_windows_snapped(problems: list[Problem]) -> None:
    actor = SolutionActor(problems)
    critic = RecordingCritic()
    outcomes = run(actor, critic, problems, concurrency=6)
    assert len(outcomes) == len(problems)
    assert actor.batch_sizes[0] == 6  # one generate call for every problem's next step
    assert actor.calls == max(a.steps for o in outcomes for a in o.attempts)
    for step in critic.seen:
        assert len(step) >= 32  # windows under half of step_tokens never reach the critic
        # snapped to its last newline; kept whole when it has none, or when it is the last step
        assert step.endswith("\n") or "\n" not in step or "boxed" in step
    events = sum(a.events.get("steps_short", 0) for o in outcomes for a in o.attempts)
    assert events > 0


def test_the_rewritten_text_keeps_the_actor_s_words(problems: list[Problem]) -> None:
    actor = SolutionActor(problems)
    outcomes = run(actor, RuleCritic(), problems)
    coded = [a for o in outcomes for a in o.attempts if a.num_calls]
    assert coded, "the rule critic coded nothing"
    for a in coded:
        prose = "".join(p.text for p in a.pieces if p.kind == "text")
        solution = actor.solutions[next(p.problem for p in problems if p.id == a.problem_id)]
        assert prose.replace("\n", "").replace(" ", "") in solution.replace("\n", "").replace(
            " ", ""
        ) or ("boxed" in prose)
        assert check_format(a.pieces).ok or check_format(a.pieces).reason == "no_boxed_answer"


def test_real_output_replaces_the_critic_s_prediction(problems: list[Problem]) -> None:
    def respond(step: str) -> str:
        first, _, rest = step.partition("\n")
        return f"{first}\n```python\nprint(6 * 7)\n```\n```output\n999\n```\n{rest}</rewrite>"

    outcomes = run(
        SolutionActor(problems[:1]), LLMCritic(ScriptedCriticPolicy(respond)), problems[:1]
    )
    a = outcomes[0].attempts[0]
    outputs = [p.text for p in a.pieces if p.kind == "output"]
    assert outputs and all(o == "\n```output\n42\n```\n" for o in outputs)
    assert "999" not in a.text
    assert all(e.status == "ok" and e.ok for e in a.executions)


def test_one_session_per_sample_persists_across_blocks(problems: list[Problem]) -> None:
    calls = {"n": 0}

    def make(step: str) -> CriticResult:
        calls["n"] += 1
        code = "x = 41\nprint(x)" if calls["n"] == 1 else "print(x + 1)"
        return code_after_first_line(code)(step)

    outcomes = run(SolutionActor(problems[:1]), FixedCritic(make), problems[:1], step_tokens=40)
    execs = outcomes[0].attempts[0].executions
    assert len(execs) >= 2
    assert [e.output for e in execs[:2]] == ["\n```output\n41\n```\n", "\n```output\n42\n```\n"]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("raise ValueError('bad')", "exec_error"),
        ("x = 1", "exec_no_output"),
        ("while True:\n    pass", "exec_timeout"),
        ("print(undefined_name)", "exec_error"),
    ],
)
def test_a_failing_block_abandons_the_sample(
    problems: list[Problem], code: str, reason: str
) -> None:
    outcomes = run(
        SolutionActor(problems[:1]),
        FixedCritic(code_after_first_line(code)),
        problems[:1],
        cell_timeout_s=1.0,
        attempts=2,
    )
    attempts = outcomes[0].attempts
    assert len(attempts) == 2 and outcomes[0].accepted is None
    for a in attempts:
        assert (a.outcome, a.stage, a.reason) == ("abandoned", "generation", reason)
        assert len(a.executions) == 1  # nothing ran after the failure


def test_at_most_five_executions_per_step(problems: list[Problem]) -> None:
    def make(step: str) -> CriticResult:
        parts = [Part(kind="text", text=step)] + [
            Part(kind="code", text=f"print({i})") for i in range(7)
        ]
        return CriticResult(status="code", parts=parts)

    outcomes = run(SolutionActor(problems[:1]), FixedCritic(make), problems[:1])
    a = outcomes[0].attempts[0]
    rewritten = a.events["steps_rewritten"]
    assert (
        a.events["blocks_run"] == 5 * rewritten and a.events["blocks_over_limit"] == 2 * rewritten
    )


def test_rejected_rewrites_keep_the_step_and_are_counted(problems: list[Problem]) -> None:
    def make(step: str) -> CriticResult:  # replaces the reasoning with a template
        return CriticResult(
            status="code",
            parts=[Part(kind="text", text="Let's code.\n"), Part(kind="code", text="print(1)")],
        )

    outcomes = run(SolutionActor(problems[:1]), FixedCritic(make), problems[:1])
    a = outcomes[0].attempts[0]
    assert a.events["critic_not_verbatim"] >= 1 and a.num_calls == 0
    assert "Let's code." not in a.text


def test_an_actor_that_never_stops_is_abandoned(problems: list[Problem]) -> None:
    actor = SolutionActor(problems[:2], never_stop=True)
    outcomes = run(actor, RuleCritic(), problems[:2], attempts=2, max_response_tokens=300)
    for o in outcomes:
        assert [a.reason for a in o.attempts] == ["actor_no_end", "actor_no_end"]
        assert all(a.actor_tokens >= 300 for a in o.attempts)


def test_attempts_until_one_is_accepted(problems: list[Problem]) -> None:
    seen: list[int] = []

    def judge(problem: Problem, attempt: AttemptResult) -> tuple[str, str]:
        seen.append(attempt.attempt)
        return ("", "") if attempt.attempt == 2 else ("answer", "wrong_answer")

    outcomes = run(SolutionActor(problems[:1]), RuleCritic(), problems[:1], judge=judge, attempts=8)
    o = outcomes[0]
    assert [a.outcome for a in o.attempts] == ["rejected", "rejected", "accepted"]
    assert o.accepted is o.attempts[2] and seen == [0, 1, 2]
    outcomes = run(
        SolutionActor(problems[:1]),
        RuleCritic(),
        problems[:1],
        judge=lambda p, a: ("format", "no_code"),
        attempts=3,
    )
    assert len(outcomes[0].attempts) == 3 and outcomes[0].accepted is None


def test_text_parts_of_a_rule_rewrite_are_exactly_the_step() -> None:
    step = "The product is 463 × 920 = 425960.\nThen 4^5 mod 7 = 2.\n"
    r = RuleCritic().rewrite(step)
    assert text_of_parts(r.parts) == step and len(r.blocks) == 2
