"""`thor eval` as a function and a command: results files, resume, refusal, kills, summaries."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from thor.errors import ConfigError
from thor.evaluation import EvalConfig, ResultsFile, evaluate, load_run, pass_at_k
from thor.testing import ScriptedPolicy

pytestmark = pytest.mark.timeout(600)
F = "```"


def script(prompt: str) -> str:
    if prompt.endswith("assistant\n"):
        n = int(prompt.split("What is ")[-1].split(" ")[0])
        return f"Compute.\n{F}python\nprint({n} + 40)\n{F}"
    value = prompt.rsplit(f"{F}output\n", 1)[1].split("\n", 1)[0]
    wrong = int(value) % 3 == 0  # every third problem answered wrong: accuracy is not trivial
    return f"\\boxed{{{int(value) + (1 if wrong else 0)}}}"


def bench(tmp_path: Path, n: int = 6, *, missing_answer: bool = False, name: str = "bench") -> Path:
    p = tmp_path / f"{name}.jsonl"
    rows = [
        {"id": f"b{i}", "problem": f"What is {i} + 40?", "answer": str(i + 40)} for i in range(n)
    ]
    if missing_answer:
        rows.append({"id": "noanswer", "problem": "What is 1 + 40?"})
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def cfg(tmp_path: Path, **over: object) -> EvalConfig:
    base = {
        "benchmark": str(bench(tmp_path)),
        "agent": "tir",
        "k": 2,
        "out": tmp_path / "out.jsonl",
        "progress": False,
    }
    base.update(over)
    return EvalConfig(**base)


def test_evaluate_writes_manifest_and_episodes(tmp_path: Path) -> None:
    s = evaluate(cfg(tmp_path), policy=ScriptedPolicy(script))
    assert (s.problems, s.episodes, s.samples_per_problem) == (6, 12, 2)
    assert s.accuracy == pytest.approx(
        4 / 6
    )  # problems 40, 43 (i=0, 3... -> values 40..45, %3==0 wrong)
    assert s.tool_calls_per_episode == 1.0 and s.exec_success_rate == 1.0
    assert set(s.pass_at_k) == {1, 2}
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["type"] == "manifest" and len(lines) == 13
    manifest, again = load_run(tmp_path / "out.jsonl")
    assert manifest["agent"] == "tir" and again.accuracy == s.accuracy


def test_resume_runs_only_what_is_missing_and_refuses_other_configs(tmp_path: Path) -> None:
    calls = {"n": 0}

    def counting(prompt: str) -> str:
        calls["n"] += 1
        return script(prompt)

    evaluate(cfg(tmp_path, limit=3), policy=ScriptedPolicy(counting))
    first = calls["n"]
    s = evaluate(cfg(tmp_path), policy=ScriptedPolicy(counting))  # a larger limit extends the run
    assert s.episodes == 12 and calls["n"] == 2 * first
    store = ResultsFile(tmp_path / "out.jsonl")
    store.load()
    ids = [r["episode"]["id"] for r in store.records]
    assert len(ids) == len(set(ids)) == 12
    with pytest.raises(ConfigError, match=r"different configuration.*agent"):
        evaluate(cfg(tmp_path, agent="thor"), policy=ScriptedPolicy(script))
    # the engine's batching is not part of what is measured: a resume may change it
    faster = cfg(tmp_path, rollout={"batch_size": 64, "cohorts": 1})
    before = calls["n"]
    assert evaluate(faster, policy=ScriptedPolicy(counting)).episodes == 12
    assert calls["n"] == before  # nothing was run again


def test_torn_last_line_is_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    evaluate(cfg(tmp_path, limit=2), policy=ScriptedPolicy(script))
    out = tmp_path / "out.jsonl"
    with out.open("a") as fh:
        fh.write('{"type": "episode", "episode": {"id": "b9#0", "pro')  # killed mid-write
    s = evaluate(cfg(tmp_path, limit=2), policy=ScriptedPolicy(script))
    assert s.episodes == 4 and "half-written" in caplog.text
    assert out.read_text().endswith("\n")


def test_problems_without_answers_are_skipped_with_a_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    c = cfg(tmp_path, benchmark=str(bench(tmp_path, 2, missing_answer=True, name="partial")))
    s = evaluate(c, policy=ScriptedPolicy(script))
    assert s.problems == 2 and "no gold answer" in caplog.text and "noanswer" in caplog.text


def test_pass_at_k_is_unbiased() -> None:
    assert pass_at_k(5, 0, 3) == 0.0 and pass_at_k(5, 5, 1) == 1.0
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


KILLABLE = textwrap.dedent(
    """
    import sys, time
    from thor.evaluation import EvalConfig, evaluate
    from thor.testing import ScriptedPolicy
    F = "```"
    def script(prompt):
        time.sleep(0.05)
        if prompt.endswith("assistant\\n"):
            return "Compute.\\n" + F + "python\\nprint(1 + 1)\\n" + F
        return "\\\\boxed{2}"
    evaluate(EvalConfig(benchmark=sys.argv[1], agent="tir", k=3, out=sys.argv[2], progress=False,
                        rollout={"batch_size": 4}), policy=ScriptedPolicy(script))
    """
)


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_and_counts_nothing_twice(tmp_path: Path) -> None:
    bench_file = bench(tmp_path, 12)
    out = tmp_path / "killed.jsonl"
    script_file = tmp_path / "run.py"
    script_file.write_text(KILLABLE)
    rng = random.Random(0)
    kills = 0

    def lines() -> int:
        return len(out.read_text().splitlines()) if out.exists() else 0

    for _ in range(60):
        proc = subprocess.Popen([sys.executable, str(script_file), str(bench_file), str(out)])
        start = lines()
        deadline = time.monotonic() + 120
        while proc.poll() is None and lines() <= start + 1 and time.monotonic() < deadline:
            time.sleep(0.05)  # wait for progress, so every kill lands in the middle of real work
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0
        break
    else:
        pytest.fail("the run never finished")
    assert kills >= 2
    store = ResultsFile(out)
    store.load()
    ids = [r["episode"]["id"] for r in store.records]
    assert sorted(ids) == sorted(f"b{i}#{s}" for i in range(12) for s in range(3))


def test_cli_compare(tmp_path: Path) -> None:
    evaluate(cfg(tmp_path, out=tmp_path / "a.jsonl"), policy=ScriptedPolicy(script))
    evaluate(cfg(tmp_path, out=tmp_path / "b.jsonl", agent="thor"), policy=ScriptedPolicy(script))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "thor",
            "eval",
            "--compare",
            str(tmp_path / "a.jsonl"),
            str(tmp_path / "b.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert res.returncode == 0, res.stderr
    assert "accuracy" in res.stdout and "12 common episodes" in res.stdout


def test_cli_reports_typos(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "thor", "eval", "--benchmark", "gsm8kk", "--limit", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1 and "did you mean 'gsm8k'" in res.stderr


def test_presets_set_the_paper_and_cpu_settings_and_explicit_fields_win() -> None:
    k, r = EvalConfig(preset="paper").resolved()
    assert (k, r.agent.config.temperature, r.env_spec().config.max_response_tokens) == (
        4,
        0.6,
        4096,
    )
    k, r = EvalConfig(preset="cpu").resolved()
    assert (k, r.env_spec().config.max_response_tokens, r.batch_size, r.cohorts) == (1, 512, 64, 1)
    k, r = EvalConfig(preset="cpu", k=2, rollout={"batch_size": 8}).resolved()
    assert (k, r.batch_size, r.cohorts) == (2, 8, 1)
    _, r = EvalConfig().resolved()  # no preset: the engine's own defaults
    assert (r.batch_size, r.cohorts) == (16, 2)
