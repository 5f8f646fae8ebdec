"""`thor plot RUN_DIR`: PNG curves from metrics.jsonl."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from thor.algos.plot import PANELS, plot_run
from thor.cli import main
from thor.errors import ThorError


def write_metrics(run: Path, steps: int = 12) -> None:
    rows = []
    for s in range(1, steps + 1):
        row = {"step": s}
        for i, panel in enumerate(PANELS):
            for j, key in enumerate(panel.keys):
                row[key] = 0.5 + 0.4 * math.sin(s / 3 + i + j)
        rows.append(row)
    rows[3]["reward"] = float("nan")  # a bad value is skipped, not drawn
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 1')


def test_thor_plot_writes_every_panel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import matplotlib.image

    run = tmp_path / "run"
    write_metrics(run)
    assert main(["plot", str(run)]) == 0
    names = {Path(line).name for line in capsys.readouterr().out.split()}
    assert names == {f"{p.name}.png" for p in PANELS} | {"overview.png"}
    for name in names:
        png = run / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = matplotlib.image.imread(png)
        assert img.shape[0] > 200 and img.shape[1] > 300
        assert img[..., :3].std() > 0.01  # not a blank canvas


def test_only_panels_with_data_and_clear_errors(tmp_path: Path) -> None:
    run = tmp_path / "sft"
    run.mkdir()
    rows = [{"step": s, "loss": 2.0 / s, "grad_norm": 1.0, "learning_rate": 2e-6} for s in (1, 2)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    files = plot_run(run / "metrics.jsonl", tmp_path / "out")
    assert [f.name for f in files] == ["losses.png", "optimizer.png", "overview.png"]
    with pytest.raises(ThorError, match="no metrics"):
        plot_run(tmp_path / "empty")
