"""The shared append-only JSONL log (thor.io.jsonl), and ResultsFile built on it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from thor.data.tirgen import TirgenStore
from thor.errors import ConfigError, ThorError
from thor.evaluation import ResultsFile
from thor.io.jsonl import JsonlLog, write_jsonl_atomic
from thor.types import Episode


def test_append_load_and_torn_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "a" / "log.jsonl"
    log = JsonlLog(path, kind="demo")
    log.load()
    log.open({"run": 1})
    for i in range(3):
        log.append({"type": "row", "i": i})
    log.close()
    with path.open("ab") as fh:
        fh.write(b'{"type": "row", "i": 3, "half')
    again = JsonlLog(path, kind="demo")
    with caplog.at_level(logging.WARNING):
        again.load()
    assert "half-written last line" in caplog.text and again.dropped_bytes > 0
    assert [r["i"] for r in again.rows] == [0, 1, 2] and again.manifest == {
        "type": "manifest",
        "run": 1,
    }
    assert path.read_bytes().endswith(b"\n")  # the torn line is gone from the file too
    again.open({"run": 1})  # a resumed run: no second manifest
    again.append({"type": "row", "i": 3})
    again.close()
    text = path.read_text()
    assert text.count('"manifest"') == 1 and [
        json.loads(x)["i"] for x in text.splitlines()[1:]
    ] == [0, 1, 2, 3]


def test_manifest_checks_ignore_the_type_and_timestamps(tmp_path: Path) -> None:
    log = JsonlLog(tmp_path / "l.jsonl")
    log.load()
    log.open({"a": 1, "created": "then"})
    log.close()
    again = JsonlLog(tmp_path / "l.jsonl")
    again.load()
    again.check_manifest({"a": 1, "created": "now"})  # resuming with the same settings is fine
    with pytest.raises(ConfigError, match="a: stored 1, now 2"):
        again.check_manifest({"a": 2})


def test_corrupt_lines_and_missing_manifest_raise(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"type": "manifest"}\nnot json\n{"type": "row"}\n')
    with pytest.raises(ThorError, match=":2: not a log line"):
        JsonlLog(path).load()
    path.write_text('{"type": "row"}\n')
    with pytest.raises(ThorError, match="without a manifest"):
        JsonlLog(path).load()


def test_write_jsonl_atomic(tmp_path: Path) -> None:
    path = write_jsonl_atomic(({"i": i} for i in range(3)), tmp_path / "x" / "out.jsonl")
    assert [json.loads(x)["i"] for x in path.read_text().splitlines()] == [0, 1, 2]
    assert [p.name for p in path.parent.iterdir()] == ["out.jsonl"]


def test_results_file_keeps_its_api_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    manifest = {"benchmark": "b", "k": 1}
    with ResultsFile(path) as store:
        store.load()
        store.check_manifest(manifest)
        store.open(manifest)
        store.append_episode(Episode(id="p#0", problem="1+1?"), correct=True)
    with path.open("a") as fh:
        fh.write('{"type": "episode", "correct"')
    again = ResultsFile(path)
    again.load()
    again.check_manifest(manifest)  # resuming an evaluation with the same settings works
    assert again.done_ids() == {"p#0"} and again.records[0]["correct"] is True
    assert [e.id for e in again.episodes()] == ["p#0"]


def test_tirgen_store_refuses_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(
        '{"type": "manifest"}\n{"type": "problem", "problem_id": "a", "n": 1}\n'
        '{"type": "problem", "problem_id": "a", "n": 2}\n'
    )
    store = TirgenStore(path)
    store.load()
    assert store.duplicates == 1 and [r["n"] for r in store.rows] == [1]
    store.open({})
    assert store.append_record({"problem_id": "a"}) is False
    assert store.append_record({"problem_id": "b"}) is True
    store.close()
    assert path.read_text().count('"problem_id": "b"') == 1


def test_a_record_with_a_unicode_line_separator_reads_back(tmp_path: Path) -> None:
    """GSM8K train has a problem with U+2028: JSON keeps it raw, and str.splitlines() broke there."""
    from thor.data.tirgen.store import TirgenStore

    store = TirgenStore(tmp_path / "records.jsonl")
    store.load()
    store.open({"run": "x"})
    store.append_record({"problem_id": "p", "status": "kept", "text": "a\u2028b\u0085c"})
    store.append_record({"problem_id": "q", "status": "kept"})
    store.close()
    again = TirgenStore(tmp_path / "records.jsonl")
    again.load()
    assert again.done_ids() == {"p", "q"}
    assert again.rows[0]["text"] == "a\u2028b\u0085c"
