"""A training run SIGKILLed at random moments, again and again, resumes and finishes exactly."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from tiny_run import (
    PLUGIN,
    ROOT,
    env,
    run_config,
    save_tiny_model,
    thor_command,
    write_config,
    write_problems,
)

from thor.algos.checkpoint import latest_checkpoint, load_checkpoint
from thor.algos.loop import TrainConfig, Trainer
from thor.algos.metrics import read_metrics
from thor.cli.train import import_plugins

STEPS = 8
MAX_KILLS = 5


def progress(out: Path) -> int:
    """Steps logged so far (rows in metrics.jsonl)."""
    return len(read_metrics(out / "metrics.jsonl"))


def run_until_progress(proc: subprocess.Popen[str], out: Path, seen: int, deadline: float) -> bool:
    """Wait until the run logs a step beyond ``seen`` (True) or the process exits (False)."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if progress(out) > seen:
            return True
        time.sleep(0.05)
    raise TimeoutError("the training process made no progress")


@pytest.mark.slow  # each restart imports torch and transformers again: minutes on a loaded machine
@pytest.mark.timeout(1500)
def test_sigkill_at_random_moments_then_resume(tmp_path: Path) -> None:
    rng = random.Random(1234)
    model_dir = save_tiny_model(tmp_path / "tiny")
    problems = write_problems(tmp_path / "problems.jsonl")
    out = tmp_path / "run"
    cfg = run_config(model_dir, problems, out, steps=STEPS, save_every=1, export=False)
    cfg["rollout"]["env"]["max_response_tokens"] = 24  # steps long enough to be killed in
    config = write_config(tmp_path / "run.yaml", cfg)
    kills, deadline = 0, time.monotonic() + 1400
    while True:
        proc = subprocess.Popen(
            thor_command("train", "--config", str(config)),
            cwd=ROOT,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen = progress(out)
        if kills >= MAX_KILLS:  # enough: let it finish
            _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert proc.returncode == 0, err[-4000:]
            break
        # Wait until this process logs a step (so every round makes progress), then kill it at a
        # random moment of the next step's time: during the checkpoint write that follows the
        # metrics row, a rollout, an update...
        if not run_until_progress(proc, out, seen, deadline):
            _, err = proc.communicate()
            assert proc.returncode == 0, err[-4000:]
            break
        last = read_metrics(out / "metrics.jsonl")[-1]
        # time_collect of a process's first step includes starting the sandbox: leave it out
        step_time = float(last["time_generate"]) + float(last["time_update"])
        delay = rng.uniform(0.0, 1.5 * step_time)
        print(f"round {kills}: seen {seen}, now {progress(out)}, kill in {delay:.2f}s")
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            _, err = proc.communicate()
            assert proc.returncode == 0, err[-4000:]
            break
        if proc.stderr is not None:
            proc.stderr.close()
    assert kills >= 3, f"killed only {kills} times: make the run longer"

    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))  # one row per step, no repeats
    ckpt = latest_checkpoint(out / "checkpoints")
    assert ckpt is not None
    state = load_checkpoint(ckpt)
    assert state["step"] == STEPS
    assert json.loads((out / "checkpoints" / "latest").read_text())["step"] == STEPS

    # The killed-and-resumed run ends with exactly the weights of a run never interrupted.
    import_plugins([str(PLUGIN)])  # the reward the subprocesses registered
    straight = Trainer(TrainConfig(**{**cfg, "out_dir": str(tmp_path / "straight")}))
    straight.train()
    straight.model.load_state_dict(state["model"])  # the checkpoint loads into the model
    reference = load_checkpoint(latest_checkpoint(tmp_path / "straight" / "checkpoints"))
    for name, value in reference["model"].items():
        assert torch.equal(value, state["model"][name]), name
    ref_rows = read_metrics(tmp_path / "straight" / "metrics.jsonl")
    assert [r["reward"] for r in rows] == [r["reward"] for r in ref_rows]
