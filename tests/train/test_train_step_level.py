"""Step-level RL end to end with a scripted policy, the real sandbox and the real verifier."""

from __future__ import annotations

import itertools

import pytest

import thor
from thor.agents import RolloutConfig, RolloutEngine
from thor.algos import CollectContext
from thor.algos.problems import ProblemStream
from thor.testing import ScriptedPolicy
from thor.types import Problem

pytestmark = pytest.mark.timeout(300)
FENCE = "```"
FAIL = f"I will compute it now.\n{FENCE}python\nprint(undefined_name)\n{FENCE}"
FIXES = itertools.cycle(
    [
        f" again.\n{FENCE}python\nx = 6 * 7\nprint(x)\n{FENCE}",  # runs: reward 1
        f" again.\n{FENCE}python\nprint(1/0)\n{FENCE}",  # fails: reward 0
        " again, without code.",  # no code: dropped
    ]
)


def script(prompt: str) -> str:
    if prompt.endswith("assistant\n"):
        return FAIL
    if prompt.endswith(f"{FENCE}\n"):  # after a tool output
        return "So the answer is \\boxed{42}."
    return next(FIXES)  # a branch point: prompt + history + kept prefix


def test_thor_collects_step_samples_from_failed_calls() -> None:
    policy = ScriptedPolicy(script)
    algo = thor.ALGORITHMS.make(
        "thor",
        group_size=2,
        prompts_per_step=2,
        step_group_size=3,
        suffix_tokens=2,
        exclude_failed_calls=False,
        dynamic_sampling=False,
    )
    cfg = RolloutConfig(agent="tir", env={"reward": "correct", "max_response_tokens": 400})
    problems = [Problem(id=f"q{i}", problem=f"What is 6*7? ({i})", answer="42") for i in range(2)]
    with RolloutEngine(policy, cfg) as engine:
        out = algo.collect(CollectContext(engine, policy, ProblemStream(problems), step=0, seed=0))
        assert out.rollouts == []  # the snapshots were closed after use
    m = out.metrics
    assert m["step_branch_points"] == 4  # one failed call in each of 2 x 2 episodes
    assert m["step_no_code"] == 4  # a third of 12 continuations wrote no code
    step = [s for s in out.samples if s.kind == "step"]
    assert len(step) == 8 and m["step_groups_kept"] == 4
    rewards = sorted(s.metadata["reward"] for s in step)
    assert rewards == [0.0] * 4 + [1.0] * 4
    for s in (
        step
    ):  # the prefix (history + kept reasoning) is the prompt: masked; the continuation trains
        assert all(v == 1 for v in s.loss_mask) and s.prompt_ids[-1:] != []
        assert (s.advantage > 0) == (s.metadata["reward"] == 1.0)
