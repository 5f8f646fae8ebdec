"""The seams of the rollout engine: any agent, any env (through its protocol), typed snapshots.

A user's agent and a user's tool (with its own call syntax) are defined here, outside the package,
and run through the same engine, evaluation and training paths as thor's own.
"""

from __future__ import annotations

import pytest

import thor
from thor.agents import RolloutConfig, RolloutEngine, RolloutTask, run_agent
from thor.algos import CollectContext
from thor.algos.problems import ProblemStream
from thor.testing import ScriptedPolicy
from thor.types import Problem, Turn

pytestmark = pytest.mark.timeout(300)
F = "```"


def failing_then_fixed(fails: int):
    seen = {"n": 0}

    def script(prompt: str) -> str:
        if prompt.rstrip().endswith(F):  # after an output block
            return "So \\boxed{42}."
        seen["n"] += 1
        if seen["n"] <= fails:
            return f"Compute.\n{F}python\nprint(undefined_name)\n{F}"
        return f"Compute.\n{F}python\nprint(6 * 7)\n{F}"

    return script, seen


def test_a_users_agent_runs_by_name_with_its_config(load_example) -> None:
    load_example("retry_agent")  # examples/retry_agent.py: a fourth agent in one file
    script, seen = failing_then_fixed(fails=2)
    cfg = RolloutConfig(agent={"name": "retry", "retries": 3})
    [ep] = run_agent(ScriptedPolicy(script), [Problem(id="q", problem="6*7?", answer="42")], cfg)
    assert seen["n"] == 3 and len(ep.discarded) == 2 and ep.discarded[0].kept_text == ""
    assert all(d.turn.failed_call for d in ep.discarded)
    assert ep.num_calls == 1 and not ep.turns[0].failed_call and ep.reward == 1.0
    assert ep.metadata["agent"] == "retry"


def test_a_typo_in_an_agent_or_its_config_says_did_you_mean() -> None:
    with pytest.raises(Exception, match="did you mean 'thor'"):
        RolloutConfig(agent="thr")
    with pytest.raises(Exception, match="did you mean 'max_retries'"):
        RolloutConfig(agent={"name": "thor", "max_retris": 1})
    with pytest.raises(Exception, match="did you mean 'max_rounds'"):
        RolloutConfig(env={"max_roundz": 1})


@pytest.mark.parametrize("agent", ["tir", "thor"])
def test_failure_snapshots_are_part_of_the_rollout_with_every_agent(agent: str) -> None:
    script, _ = failing_then_fixed(fails=1)
    problem = Problem(id="q", problem="6*7?", answer="42")
    cfg = RolloutConfig(agent={"name": agent, "max_retries": 1} if agent == "thor" else agent)
    with RolloutEngine(ScriptedPolicy(script), cfg) as engine:
        with engine.rollout([RolloutTask(problem=problem)], keep_snapshots=True) as r:
            [ep] = r.episodes
            assert list(r.snapshots) == [(ep.id, 0)]  # the state before turn 0's failed call
            snap = r.snapshot(ep.id, 0)
            assert snap is not None and len(snap.episode.turns) == 0
            _, _, _, _, info = snap.fork().act(Turn(text=f"{F}python\nprint(1)\n{F}"))
            assert info["exec"].ok
        assert r.snapshots == {}  # closed with the rollout
        plain = engine.run([RolloutTask(problem=problem, sample=1)])
        assert len(plain) == 1


def test_agent_thor_with_algorithm_thor_trains_step_groups() -> None:
    """The silent no-op of the first wave: self-correction kept no snapshots for step-level RL."""
    fixes = iter(
        [f" again.\n{F}python\nprint(6 * 7)\n{F}", f" again.\n{F}python\nprint(1/0)\n{F}"] * 50
    )

    def script(prompt: str) -> str:
        if prompt.rstrip().endswith(F):
            return "So \\boxed{42}."
        if prompt.endswith("assistant\n"):
            return f"I will compute it now.\n{F}python\nprint(undefined_name)\n{F}"
        return next(fixes)  # a retry (thor agent) or a branch point (step level)

    policy = ScriptedPolicy(script)
    algo = thor.ALGORITHMS.make(
        "thor",
        group_size=2,
        prompts_per_step=1,
        step_group_size=2,
        suffix_tokens=2,
        exclude_failed_calls=False,
        dynamic_sampling=False,
    )
    cfg = RolloutConfig(agent={"name": "thor", "max_retries": 1, "backtrack_tokens": 2})
    problems = [Problem(id="q", problem="What is 6*7?", answer="42")]
    with RolloutEngine(policy, cfg) as engine:
        out = algo.collect(CollectContext(engine, policy, ProblemStream(problems), step=0, seed=0))
    assert out.metrics["step_branch_points"] >= 1
    assert out.metrics["step_groups_kept"] >= 1
    assert any(s.kind == "step" for s in out.samples)


# -- a user's tool with its own call syntax, driven by the engine ---------------------------------
def test_a_tool_with_its_own_syntax_runs_through_the_engine_with_its_stop_rule(
    load_example,
) -> None:
    load_example("solve_tool_env")
    seen_stops: list[list[str]] = []

    class Recording(ScriptedPolicy):
        def generate(self, prompts, params):  # type: ignore[no-untyped-def]
            seen_stops.append(list(params.stop))
            return super().generate(prompts, params)

    def script(prompt: str) -> str:
        if prompt.rstrip().endswith("</result>"):
            return "The larger root is \\boxed{3}."
        return "Solve it. <solve>x**2 - 5*x + 6 = 0</solve> and then more text that must not appear"

    cfg = RolloutConfig(agent="tir", env={"name": "examples/SolveTIR-v0", "reward": "correct"})
    [ep] = run_agent(
        Recording(script), [Problem(id="s", problem="Larger root of x^2-5x+6?", answer="3")], cfg
    )
    assert seen_stops[0] == ["</solve>"]
    assert ep.turns[0].text.endswith("</solve>") and ep.turns[0].observation.strip() == (
        "<result>[2, 3]</result>"
    )
    assert ep.reward == 1.0


def test_thor_make_and_gymnasium_make_take_runtime_objects() -> None:
    import gymnasium

    problems = [Problem(id="only", problem="1+1?", answer="2")]
    calls: list[str] = []

    def reward(ep) -> float:  # type: ignore[no-untyped-def]
        calls.append(ep.id)
        return 0.5

    for make in (thor.make, gymnasium.make):
        env = make("thor/MathTIR-v0", max_rounds=1, problems=problems, reward_fn=reward)
        try:
            obs, _ = env.reset(seed=0)
            assert obs == "1+1?" and env.spec is not None
            _, r, term, _, _ = env.step("\\boxed{2}")
            assert (r, term) == (0.5, True)
        finally:
            env.close()
    assert calls == ["only", "only"]


def test_rewards_are_configured_from_yaml_as_weighted_terms(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import yaml

    from thor.config import load_config

    path = tmp_path / "rollout.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "agent": "tir",
                "env": {
                    "reward": [
                        {"name": "correct", "weight": 1.0, "config": {"mode": "lenient"}},
                        {"name": "tool_calls", "weight": 0.5, "mode": "bonus", "bonus": 0.2},
                    ]
                },
            }
        )
    )
    cfg = load_config(RolloutConfig, path)
    script, _ = failing_then_fixed(fails=0)
    [ep] = run_agent(ScriptedPolicy(script), [Problem(id="q", problem="6*7?", answer="42")], cfg)
    assert ep.rewards == {"correct": 1.0, "tool_calls": 0.2}
    assert ep.reward == pytest.approx(1.0 + 0.5 * 0.2)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"env": {"reward": [{"name": "corect"}]}}))
    with pytest.raises(thor.ConfigError, match="did you mean 'correct'"):
        load_config(RolloutConfig, bad)
