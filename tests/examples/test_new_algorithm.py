"""examples/new_algorithm.py: a new algorithm registered by name, its hook, and a short training run."""

from __future__ import annotations

import importlib.util
import itertools
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import thor

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "new_algorithm.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("thor_example_new_algorithm", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_advantages_are_normalised_over_the_whole_batch(example: ModuleType) -> None:
    import torch

    from thor.agents import RolloutConfig, RolloutEngine
    from thor.algos import CollectContext
    from thor.algos.problems import ProblemStream
    from thor.testing import ScriptedPolicy

    algo = thor.ALGORITHMS.make("reinforce_pp", group_size=3, prompts_per_step=2)
    assert isinstance(algo, example.ReinforcePP)
    assert torch.equal(
        algo.advantages(torch.tensor([1.0, 0.0, 2.0]), 3), torch.tensor([0.0, -1.0, 1.0])
    )
    texts = itertools.cycle(["abc 1", "12345", "no digits", "7", "a1", "x"])
    policy = ScriptedPolicy(lambda prompt: next(texts))
    cfg = RolloutConfig(agent="cot", env={"reward": "digit_share", "max_response_tokens": 32})
    problems = [thor.Problem(id=f"p{i}", problem=f"q{i}") for i in range(2)]
    with RolloutEngine(policy, cfg) as engine:
        out = algo.collect(CollectContext(engine, policy, ProblemStream(problems), step=0, seed=0))
    adv = [s.advantage for s in out.samples]
    assert len(adv) == 6 and statistics.pstdev(adv) == pytest.approx(1.0, rel=1e-4)
    for g in range(2):  # each group's advantages still sum to zero (group-mean baseline)
        assert sum(adv[3 * g : 3 * g + 3]) == pytest.approx(0.0, abs=1e-5)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one torch thread (more threads only contend)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("one_thread")
def test_the_example_trains_the_tiny_model(example: ModuleType, tmp_path: Path) -> None:
    rows = example.main(tmp_path / "run", steps=2)
    assert [r["step"] for r in rows] == [1, 2]
    assert all("advantage_std_before" in r for r in rows)
    assert sum(r.get("train_tokens", 0) for r in rows) > 0
