"""The examples run as scripts and as imported modules (the extension path works)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(300)


def load(name: str):
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", ROOT / "examples" / f"{name}.py"
    )
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def test_solve_tool_env() -> None:
    obs, reward, terminated = load("solve_tool_env").main()
    assert obs.strip() == "<result>[2, 3]</result>" and reward == "1.0" and terminated == "True"


def test_custom_env() -> None:
    rewards = load("custom_env").main()
    assert rewards == [1.1, pytest.approx(0.1), 0.0]  # all tests, none, no code at all


@pytest.mark.parametrize("name", ["solve_tool_env", "custom_env"])
def test_examples_run_as_scripts(name: str) -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert res.returncode == 0, res.stderr
