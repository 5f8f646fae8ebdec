"""The package's layering, checked by import-linter (contracts in pyproject.toml), and the light
core: the text protocol imports without gymnasium, numpy or any model code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("lint-imports is missing: install the dev extra (pip install -e '.[dev]')")
    res = subprocess.run(
        [exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_the_text_protocol_loads_no_gymnasium_numpy_or_torch() -> None:
    code = (
        "import sys, thor.text; "
        "print(sorted(m for m in ('gymnasium', 'numpy', 'torch', 'transformers') if m in sys.modules))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_the_package_is_typed() -> None:
    assert (ROOT / "thor" / "py.typed").is_file()
