"""SIGKILL a TIRGen run at random moments, again and again: every problem ends up processed once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from thor.data.synthetic import generate_problems, write_problems_jsonl

TARGET = Path(__file__).resolve().parent / "tirgen_kill_target.py"
ROOT = Path(__file__).resolve().parents[2]


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def _start(problems: Path, out: Path, difficulty: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(TARGET), str(problems), str(out), "0.1", "1" if difficulty else "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("difficulty", [False, True])
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, difficulty: bool
) -> None:
    problems = generate_problems(32, seed=21, families=["arithmetic", "modular", "combinatorics"])
    pfile = write_problems_jsonl(problems, tmp_path / "problems.jsonl")
    out = tmp_path / "out"
    rng = random.Random(1234 + difficulty)
    kills = 0
    for _ in range(30):
        proc = _start(pfile, out, difficulty)
        if kills < 6:
            # a random moment: during start-up, or just after a record was appended
            before = len(_lines(out / "records.jsonl"))
            early = rng.random() < 0.3
            t_end = time.monotonic() + (rng.uniform(0.2, 4.0) if early else 120.0)
            while time.monotonic() < t_end and proc.poll() is None:
                if not early and len(_lines(out / "records.jsonl")) > before:
                    time.sleep(rng.uniform(0.0, 0.5))
                    break
                time.sleep(0.02)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
                proc.wait()
                continue
        output = proc.communicate(timeout=600)[0].decode()
        assert proc.returncode == 0, output[-3000:]
        assert f"DONE {len(problems)}" in output
        break
    else:
        pytest.fail("the run never finished")
    assert kills >= 4, f"only {kills} kills landed; the run was too fast for this test"
    raw = (out / "records.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    recs = [r for r in _lines(out / "records.jsonl") if r.get("type") == "problem"]
    counts = Counter(r["problem_id"] for r in recs)
    assert set(counts) == {p.id for p in problems}, "a problem was lost"
    assert max(counts.values()) == 1, f"processed twice: {[k for k, v in counts.items() if v > 1]}"
    kept = {r["problem_id"] for r in recs if r["status"] == "kept"}
    sft = _lines(out / "sft.jsonl")
    sft_ids = [r["provenance"]["problem_id"] for r in sft]
    assert len(sft_ids) == len(set(sft_ids)) and set(sft_ids) <= kept
    funnel = json.loads((out / "funnel.json").read_text())
    assert funnel["problems"] == len(problems) and funnel["samples"] == len(sft)
    if difficulty:
        episodes = [r for r in _lines(out / "difficulty.jsonl") if r.get("type") == "episode"]
        ids = Counter(e["episode"]["id"] for e in episodes)
        assert max(ids.values()) == 1  # the CoT evaluation resumed without repeating itself
