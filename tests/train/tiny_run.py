"""Files for training the tiny model in a subprocess: the model directory, problems, a run config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

PLUGIN = Path(__file__).with_name("tiny_plugin.py")
ROOT = Path(__file__).resolve().parents[2]


def save_tiny_model(directory: Path) -> Path:
    """The tiny random model and its tokenizer as an HF directory (what `model:` accepts)."""
    from thor.testing import tiny_model, tiny_tokenizer

    if not (directory / "config.json").exists():
        tiny_model(seed=0).save_pretrained(directory)
        tiny_tokenizer().save_pretrained(directory)
    return directory


def write_problems(path: Path, n: int = 12) -> Path:
    rows = [{"id": f"p{i}", "problem": f"Say a number {i}.", "answer": "7"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_config(model_dir: Path, problems: Path, out_dir: Path, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model": str(model_dir),
        "dataset": str(problems),
        "steps": 3,
        "seed": 0,
        "out_dir": str(out_dir),
        "save_every": 1,
        "progress": False,
        "precision": "fp32",
        "algorithm": {
            "name": "grpo",
            "group_size": 4,
            "prompts_per_step": 2,
            "loss": {"nll_coef": 0.0},
        },
        "rollout": {"agent": "cot", "env": {"reward": "char_variety", "max_response_tokens": 6}},
        "optim": {"lr": 3e-3, "micro_batch_size": 8},
    }
    cfg.update(over)
    return cfg


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def thor_command(*args: str) -> list[str]:
    """``python -m thor ARGS --import tiny_plugin.py --threads 1``."""
    return [sys.executable, "-m", "thor", *args, "--import", str(PLUGIN), "--threads", "1"]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_thor(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        thor_command(*args),
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
