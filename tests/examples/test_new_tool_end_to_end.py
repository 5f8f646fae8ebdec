"""A tool defined outside the package, with its own call syntax (``<solve>...</solve>``, not python
fences), is evaluated with ``thor eval --import FILE --env ID`` and trained on with ``thor train``,
generation by a scripted backend that calls it (registered by a plugin file, like a user would)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from thor.cli import main
from thor.evaluation import ResultsFile

pytestmark = pytest.mark.timeout(600)
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "solve_tool_env.py"

PLUGIN = textwrap.dedent(
    '''
    """A scripted backend that solves with the <solve> tool: right on even calls, wrong on odd."""
    import itertools

    import thor
    from thor.config import ThorConfig
    from thor.testing import ScriptedPolicy, tiny_tokenizer

    class SolverConfig(ThorConfig):
        model: str = "embedded"

    class Solver(ScriptedPolicy):
        weights_version = 0

        def __init__(self, config: SolverConfig) -> None:
            answers = itertools.cycle(["3", "2"])

            def script(prompt: str) -> str:
                if prompt.rstrip().endswith("</result>"):
                    return "The larger root is \\\\boxed{%s}." % next(answers)
                return "Let me solve it. <solve>x**2 - 5*x + 6 = 0</solve>"

            super().__init__(script, tokenizer=tiny_tokenizer(), name="solver")

        def sync_weights(self, model, *, version: int) -> None:  # scripted: nothing to load
            self.weights_version = version

    if "test.solver" not in thor.POLICIES:
        thor.POLICIES.register("test.solver", config=SolverConfig, factory=Solver)
    '''
)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    plugin = tmp_path / "solver_plugin.py"
    plugin.write_text(PLUGIN)
    bench = tmp_path / "roots.jsonl"
    rows = [
        {"id": f"r{i}", "problem": "Find the larger root of x^2 - 5x + 6 = 0.", "answer": "3"}
        for i in range(4)
    ]
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"plugin": plugin, "bench": bench}


def test_thor_eval_runs_a_new_tools_env(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    args = ["eval", "--import", str(EXAMPLE), "--import", str(files["plugin"])]
    args += ["--env", "examples/SolveTIR-v0", "--backend", "test.solver"]
    args += ["--benchmark", str(files["bench"]), "--k", "1", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    store = ResultsFile(out)
    store.load()
    episodes = sorted(store.episodes(), key=lambda e: e.id)
    assert len(episodes) == 4
    for ep in episodes:
        assert ep.num_calls == 1 and ep.turns[0].text.endswith("</solve>")
        assert ep.turns[0].observation.strip() == "<result>[2, 3]</result>"
    assert sorted(ep.reward for ep in episodes) == [0.0, 0.0, 1.0, 1.0]


def test_thor_train_steps_on_a_new_tools_env(files: dict[str, Path], tmp_path: Path) -> None:
    from thor.testing import tiny_model, tiny_tokenizer

    model = tmp_path / "tiny"  # the tiny random model as an HF directory, what `model:` takes
    tiny_model(seed=0).save_pretrained(model)
    tiny_tokenizer().save_pretrained(model)
    out = tmp_path / "run"
    args = ["train", "--import", str(EXAMPLE), "--import", str(files["plugin"])]
    for item in (
        f"model={model}",
        f"dataset={files['bench']}",
        "generation=test.solver",
        "algorithm.name=grpo",
        "algorithm.group_size=2",
        "algorithm.prompts_per_step=2",
        "rollout.env.name=examples/SolveTIR-v0",
        "rollout.env.reward=correct",
        "steps=1",
        "precision=fp32",
        f"out_dir={out}",
        "export=false",
        "progress=false",
    ):
        args += ["--set", item]
    assert main(args) == 0
    [row] = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert row["tool_calls"] == 1.0 and row["exec_success"] == 1.0
    assert row["trajectory_samples"] == 4 and row["train_tokens"] > 0
