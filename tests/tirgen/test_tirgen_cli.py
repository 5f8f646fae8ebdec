"""``thor tirgen``: a thin layer over run_tirgen; and a real run with the embedded model (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import thor.data.tirgen as tirgen
from thor.cli import build_parser, main
from thor.data.tirgen import Funnel, FunnelStage, TirgenConfig


def test_the_command_is_registered() -> None:
    args = build_parser().parse_args(
        [
            "tirgen",
            "--problems",
            "synthetic_train",
            "--critic",
            "rule",
            "--out",
            "o",
            "--preset",
            "cpu",
        ]
    )
    assert args.command == "tirgen" and args.preset == "cpu" and args.critic == "rule"


def test_the_cli_maps_its_flags_onto_the_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[TirgenConfig] = []

    def fake_run(cfg: TirgenConfig) -> Funnel:
        seen.append(cfg)
        return Funnel(
            stages=[FunnelStage(stage="input", unit="problems", entered=1, kept=1, dropped=0)]
        )

    monkeypatch.setattr(tirgen, "run_tirgen", fake_run)
    rc = main(
        [
            "tirgen",
            "--problems",
            "p.jsonl",
            "--actor",
            "embedded",
            "--critic",
            "embedded",
            "--out",
            str(tmp_path),
            "--preset",
            "cpu",
            "--limit",
            "7",
            "--concurrency",
            "3",
            "--no-difficulty",
            "--code-quality",
            "release",
            "--no-progress",
            "--attempts",
            "3",
        ]
    )
    assert rc == 0
    [cfg] = seen
    r = cfg.resolved()
    assert (cfg.problems, cfg.limit, cfg.concurrency, cfg.difficulty) == ("p.jsonl", 7, 3, False)
    assert (r.step_tokens, r.attempts, cfg.code_quality_rule, cfg.progress) == (
        128,
        3,
        "release",
        False,
    )


def test_presets() -> None:
    cpu = TirgenConfig(out="o", preset="cpu").resolved()
    paper = TirgenConfig(out="o", preset="paper").resolved()
    assert (cpu.step_tokens, cpu.attempts) == (128, 2)
    assert (paper.step_tokens, paper.attempts, paper.max_exec_per_step) == (512, 8, 5)
    assert TirgenConfig(out="o", preset="cpu", attempts=5).resolved().attempts == 5
    assert "out" not in cpu.manifest() and "limit" not in cpu.manifest()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_thor_tirgen_with_the_embedded_model(tmp_path: Path) -> None:
    """The real thing, small: SmolLM2-135M as actor, the rule critic, two synthetic problems."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "thor",
        "tirgen",
        "--problems",
        "synthetic_train",
        "--limit",
        "2",
        "--actor",
        "embedded",
        "--critic",
        "rule",
        "--preset",
        "cpu",
        "--max-tokens",
        "256",
        "--out",
        str(out),
        "--no-progress",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1700)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "TIRGen funnel" in proc.stdout
    recs = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert len([r for r in recs if r.get("type") == "problem"]) == 2
    funnel = json.loads((out / "funnel.json").read_text())
    assert funnel["problems"] == 2 and funnel["actor"] == "embedded"
