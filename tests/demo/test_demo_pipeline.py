"""`thor demo` end to end with a tiny random model: every stage runs for real (synthetic problems,
the sandbox, TIRGen with the reference actor and the rule critic, SFT through TRL, GRPO, THOR's
step-level RL, evaluation with and without self-correction), only the model is small."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from thor.data.synthetic import FAMILIES
from thor.demo import run_demo
from thor.demo.pipeline import DEVIATIONS, DemoConfig
from thor.testing import tiny_model, tiny_tokenizer

pytestmark = pytest.mark.timeout(600)

STAGES = [
    "01-problems",
    "02-eval-base",
    "03-tirgen",
    "04-sft",
    "05-eval-coldstart",
    "06-rl-trajectory",
    "07-eval-trajectory",
    "08-rl-step",
    "09-eval-step",
    "10-eval-selfcorrect",
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tiny-model")
    tiny_model(seed=0).save_pretrained(d)
    tiny_tokenizer().save_pretrained(d)
    return d


def small(tiny_dir: Path, out: Path, **over: Any) -> DemoConfig:
    settings: dict[str, Any] = {
        "out_dir": out,
        "model": str(tiny_dir),
        "eval_problems": 4,
        "tirgen_problems": 6,
        "rl_steps": 1,
        "group_size": 2,
        "prompts_per_step": 1,
        "step_group_size": 2,
        "sft_epochs": 1.0,
        "max_response_tokens": 32,
        "progress": False,
    }
    return DemoConfig(**{**settings, **over})


def test_demo_runs_every_stage_and_resumes(tiny_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run_demo(small(tiny_dir, out))

    assert [r.stage for r in result.stages] == [
        "base (CoT)",
        "cold start (TIRGen + SFT)",
        "+ trajectory RL",
        "+ step RL",
        "+ self-correction",
    ]
    assert all(len(r.correct) == 4 for r in result.stages)  # the same held-out problems
    for stage in STAGES:
        assert (out / stage / "result.json").exists(), stage
    sft_rows = (out / "03-tirgen" / "sft.jsonl").read_text().splitlines()
    assert sft_rows, "TIRGen kept no sample"
    row = json.loads(sft_rows[0])
    assert "```python" in row["completion"][0]["content"]
    assert "```output" in row["completion"][0]["content"]
    for model in ("04-sft", "06-rl-trajectory", "08-rl-step"):
        assert (out / model / "model" / "config.json").exists(), model
    report = (out / "report.md").read_text()
    assert "+ self-correction" in report and DEVIATIONS[0] in report
    assert result.table_markdown in report

    # a second run finds every stage done and reproduces the table without recomputing
    mtime = (out / "06-rl-trajectory" / "result.json").stat().st_mtime
    again = run_demo(small(tiny_dir, out))
    assert again.table_markdown == result.table_markdown
    assert (out / "06-rl-trajectory" / "result.json").stat().st_mtime == mtime


def test_demo_config_rejects_typos_and_bad_sizes() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="eval_problem"):
        DemoConfig(eval_problem=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        DemoConfig(group_size=1)
    long = DemoConfig(preset="long")
    assert long.get("eval_problems") >= 300
    assert set(long.get("families")) == set(FAMILIES)  # where code can fail: the step level's input
    assert DemoConfig(families=["series"]).get("families") == ["series"]


def test_gsm8k_preset_runs_every_stage_small(tiny_dir: Path, tmp_path: Path) -> None:
    """The gsm8k preset's plumbing, shrunk with overrides: GSM8K test held out, GSM8K train learnt
    from (TIRGen with the GSM8K critic), both scoring rules, and each stage's cost."""
    out = tmp_path / "gsm8k"
    result = run_demo(
        small(tiny_dir, out, preset="gsm8k", eval_problems=3, overrides={"sft_rows": 4})
    )
    assert [r.stage for r in result.stages][:3] == [
        "base (CoT)",
        "base (TIR)",
        "cold start (TIRGen + SFT)",
    ]
    assert all(len(r.correct) == 3 and r.last_number is not None for r in result.stages)
    held = [json.loads(x)["problem"] for x in (out / "01-problems" / "heldout.jsonl").open()]
    train = {json.loads(x)["problem"] for x in (out / "01-problems" / "train.jsonl").open()}
    assert len(held) == 3 and not set(held) & train  # GSM8K test, never trained on
    rows = [json.loads(x) for x in (out / "03-tirgen" / "sft.jsonl").open()]
    assert rows and all("<<" not in r["completion"][0]["content"] for r in rows)
    assert all(r["provenance"]["critic"] == "gsm8k" for r in rows)
    report = (out / "report.md").read_text()
    assert "last number (lm-eval)" in report and "Cost per stage" in report
    assert {c.stage for c in result.costs} >= {"03-tirgen", "04-sft", "08-rl-step"}
    assert all(c.wall_s >= 0 for c in result.costs)
    assert next(c for c in result.costs if c.stage == "06-rl-trajectory").tokens > 0


def test_overrides_must_name_preset_keys() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown preset keys"):
        DemoConfig(preset="gsm8k", overrides={"sft_row": 3})
    assert DemoConfig(preset="gsm8k", overrides={"sft_rows": 3}).get("sft_rows") == 3
    assert DemoConfig(preset="gsm8k").get("base_agents") == ["cot", "tir"]
