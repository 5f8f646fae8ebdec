"""The python snippets of CONTRIBUTING.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "CONTRIBUTING.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_there_are_snippets() -> None:
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_snippet_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(SNIPPETS[index], f"CONTRIBUTING.md[{index}]", "exec"), {"__name__": "snippet"})
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed and printed[-1] == "1.0"
