"""`thor train` and `thor sft`: config files, --set overrides, typos named, a real run in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from tiny_run import PLUGIN, run_config, run_thor, save_tiny_model, write_config, write_problems

from thor.cli import main

pytestmark = pytest.mark.timeout(600)


@pytest.mark.slow  # importing torch and transformers in a fresh process: 40 s on a loaded machine
def test_thor_train_runs_the_tiny_model_in_a_subprocess(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model_dir = save_tiny_model(tmp_path / "tiny")
    problems = write_problems(tmp_path / "problems.jsonl")
    out = tmp_path / "run"
    cfg = write_config(tmp_path / "run.yaml", run_config(model_dir, problems, out, steps=2))
    proc = run_thor("train", "--config", str(cfg), "--set", "save_every=2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"run directory: {out}" in proc.stdout
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert {"reward", "time_generate", "time_update"} <= set(rows[0])
    assert sum(r.get("train_tokens", 0) for r in rows) > 0  # an update happened
    assert json.loads((out / "checkpoints" / "latest").read_text())["step"] == 2
    trained = AutoModelForCausalLM.from_pretrained(out / "model", dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    changed = [
        n
        for (n, a), (_, b) in zip(trained.named_parameters(), base.named_parameters(), strict=True)
        if not torch.equal(a, b)
    ]
    assert changed  # the export holds the trained weights


def test_thor_train_in_process_resumes_and_extends_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = save_tiny_model(tmp_path / "tiny")
    problems = write_problems(tmp_path / "problems.jsonl")
    out = tmp_path / "run"
    cfg = write_config(tmp_path / "run.yaml", run_config(model_dir, problems, out, steps=1))
    args = ["train", "--config", str(cfg), "--import", str(PLUGIN), "--set", "export=false"]
    assert main(args) == 0
    assert f"run directory: {out}" in capsys.readouterr().out
    assert main([*args, "--set", "steps=2"]) == 0  # the same command, one more step: resumes
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and rows[1]["train_tokens"] > 0
    assert json.loads((out / "checkpoints" / "latest").read_text())["step"] == 2


def test_a_typo_fails_with_the_field_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "run.yaml"
    bad.write_text(yaml.safe_dump({"algorithm": "grpo", "optim": {"lrr": 1e-3}}))
    assert main(["train", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "run.yaml" in err and "unknown field 'optim.lrr' (did you mean 'lr'?)" in err

    toml = tmp_path / "run.toml"
    toml.write_text('algorithm = "grpo"\nstepz = 3\n')
    assert main(["train", "--config", str(toml)]) == 1
    assert "unknown field 'stepz' (did you mean 'steps'?)" in capsys.readouterr().err

    assert main(["train", "--set", "rollout.agent.temperatur=1.0", "--print-config"]) == 1
    assert "rollout" in (err := capsys.readouterr().err) and "did you mean 'temperature'" in err

    args = ["train", "--set", "algorithm=grpo", "--set", "algorithm.group_sise=4"]
    assert main([*args, "--print-config"]) == 1
    assert "did you mean 'group_size'" in capsys.readouterr().err

    assert main(["train", "--set", "steps", "--print-config"]) == 1
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_set_overrides_the_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"algorithm": "grpo", "steps": 5, "optim": {"lr": 1e-6}}))
    args = ["train", "--config", str(cfg), "--set", "optim.lr=3e-3", "--set", "steps=7"]
    assert main([*args, "--set", "lora={r: 4}", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["lr"] == 3e-3 and printed["steps"] == 7
    assert printed["algorithm"]["name"] == "grpo" and printed["lora"]["r"] == 4


def test_thor_sft_trains_from_a_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = save_tiny_model(tmp_path / "tiny")
    content = "We compute.\n```python\nprint(7)\n```\n```output\n7\n```\nSo \\boxed{7}."
    a = content.index("\n```output")
    b = content.index("So")
    row = {
        "prompt": [{"role": "user", "content": "Say 7."}],
        "completion": [{"role": "assistant", "content": content}],
        "model_spans": [[0, a], [b, len(content)]],
    }
    data = tmp_path / "sft.jsonl"
    data.write_text((json.dumps(row) + "\n") * 4)
    cfg = tmp_path / "sft.yaml"
    out = tmp_path / "sft"
    cfg.write_text(
        yaml.safe_dump({"data": str(data), "model": str(model_dir), "out_dir": str(out)})
    )
    sets = ["--set", "bf16=false", "--set", "batch_size=2", "--set", "progress=false"]
    assert main(["sft", "--config", str(cfg), *sets]) == 0
    assert f"SFT model: {out / 'model'}" in capsys.readouterr().out
    assert (out / "model" / "config.json").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2  # 4 rows / batch 2
    assert main(["sft", "--config", str(cfg), "--set", "epoch=2"]) == 1
    assert "did you mean 'epochs'" in capsys.readouterr().err
