"""``thor eval`` as a new user meets it: a bare run is a CPU-sized run whose results are written,
and bad values are one-line errors that name the field."""

from __future__ import annotations

import pytest
import yaml

from thor.cli import main


def printed_config(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["eval", *args, "--print-config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_a_bare_eval_uses_the_cpu_preset_and_a_default_results_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = printed_config(capsys, "--limit", "3")
    assert cfg["preset"] == "cpu" and cfg["k"] == 1 and cfg["max_response_tokens"] == 512
    assert cfg["out"].startswith("runs/eval/math500-tir-") and cfg["out"].endswith(".jsonl")
    again = printed_config(capsys, "--limit", "5")  # the limit may grow on resume: same file
    assert again["out"] == cfg["out"]
    other = printed_config(capsys, "--agent", "thor")
    assert other["out"] != cfg["out"] and other["out"].startswith("runs/eval/math500-thor-")
    paper = printed_config(capsys, "--preset", "paper")
    assert paper["k"] == 4 and paper["max_response_tokens"] == 4096


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--limit", "0"], "limit"),
        (["--k", "0"], "k"),
        (["--temperature", "-1"], "temperature"),
        (["--agent", "thr"], "did you mean 'thor'"),
        (["--set", "rollout.agent.temperatur=1"], "did you mean 'temperature'"),
        (["--agent", "thor", "--set", "rollout.agent.max_retris=2"], "did you mean 'max_retries'"),
    ],
)
def test_bad_values_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], field: str
) -> None:
    assert main(["eval", *args]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("thor eval: error:") and field in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_help_lists_the_benchmarks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "gsm8k" in text and "math500" in text and "aime24" in text
