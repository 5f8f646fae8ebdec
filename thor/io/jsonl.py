"""Append-only JSONL files with a manifest line, safe against being killed at any moment.

A log is a manifest line (``{"type": "manifest", ...}``: what run wrote the file) followed by one
JSON object per line. Each line is appended whole (one ``write`` on an ``O_APPEND`` descriptor,
then ``fsync``), so a process killed at any moment leaves at most one half-written last line:
:meth:`JsonlLog.load` detects it, says so (a warning naming the file and the bytes dropped) and cuts
it off, and a resumed run continues with nothing lost or counted twice.

Used by :class:`thor.evaluation.ResultsFile` (episodes) and by TIRGen's record of processed
problems (:mod:`thor.data.tirgen.store`).

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "log.jsonl"
    >>> with JsonlLog(path) as log:
    ...     log.load()
    ...     log.open({"run": "demo"})
    ...     log.append({"type": "row", "n": 1})
    >>> _ = open(path, "a").write('{"type": "row", "n": 2')  # a torn line, as a kill leaves it
    >>> again = JsonlLog(path)
    >>> again.load()  # warns that it drops the torn line
    >>> [r["n"] for r in again.rows], again.manifest["run"]
    ([1], 'demo')
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from thor.errors import ConfigError, ThorError

__all__ = ["JsonlLog", "write_jsonl_atomic"]

log = logging.getLogger(__name__)


class JsonlLog:
    """An append-only JSONL file with a manifest line; torn last lines are detected and dropped.

    Args:
        path: the file (created with its directory on :meth:`open`).
        kind: what the file holds, for messages (``"results"``, ``"tirgen records"``).
        row_type: keep only rows whose ``"type"`` is this (``None``: every row but the manifest).

    Attributes:
        manifest: the manifest row, once loaded or written.
        rows: the rows read by :meth:`load` and appended since.
    """

    def __init__(self, path: str | Path, *, kind: str = "log", row_type: str | None = None) -> None:
        self.path = Path(path)
        self.kind = kind
        self.row_type = row_type
        self.manifest: dict[str, Any] | None = None
        self.rows: list[dict[str, Any]] = []
        self.dropped_bytes = 0
        self._fd: int | None = None

    def load(self) -> None:
        """Read what earlier runs wrote; a torn last line is reported (a warning) and removed.

        Raises:
            ThorError: a complete line that is not JSON, or rows without a manifest line.
        """
        self.manifest, self.rows, self.dropped_bytes = None, [], 0
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        good = raw.rfind(b"\n") + 1
        if good < len(raw):
            self.dropped_bytes = len(raw) - good
            log.warning(
                "%s: dropping a half-written last line (%d bytes) left by an interrupted run",
                self.path,
                self.dropped_bytes,
            )
            with self.path.open("r+b") as fh:
                fh.truncate(good)
            raw = raw[:good]
        # split on "\n" only: str.splitlines() also breaks at U+2028 and friends, which JSON
        # written with ensure_ascii=False keeps raw inside strings (a GSM8K problem has one)
        for lineno, line in enumerate(raw.decode("utf-8", "replace").split("\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ThorError(
                    f"{self.path}:{lineno}: not a {self.kind} line ({err.msg})"
                ) from None
            if not isinstance(row, dict):
                raise ThorError(f"{self.path}:{lineno}: not a {self.kind} line (not an object)")
            if row.get("type") == "manifest":
                if self.manifest is None:
                    self.manifest = row
            elif self.row_type is None or row.get("type") == self.row_type:
                self.rows.append(row)
        if self.rows and self.manifest is None:
            raise ThorError(
                f"{self.path}: {self.kind} without a manifest line; not a thor {self.kind} file"
            )

    def check_manifest(
        self, manifest: dict[str, Any], *, ignore: tuple[str, ...] = ("created", "thor_version")
    ) -> None:
        """Refuse to resume when the stored run was made with a different configuration.

        Raises:
            ConfigError: naming every field that differs, stored and new values.
        """
        if self.manifest is None:
            return
        stored = {k: v for k, v in self.manifest.items() if k not in ignore and k != "type"}
        new = {k: v for k, v in manifest.items() if k not in ignore and k != "type"}
        diffs = sorted(k for k in set(stored) | set(new) if stored.get(k) != new.get(k))
        if diffs:
            details = "; ".join(f"{k}: stored {stored.get(k)!r}, now {new.get(k)!r}" for k in diffs)
            raise ConfigError(
                f"{self.path} was written with a different configuration ({details}). "
                "Resume with the same settings, or write to another output."
            )

    def open(self, manifest: dict[str, Any]) -> None:
        """Open for appending; writes the manifest when the file has none yet."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if self.manifest is None:
            self.manifest = {"type": "manifest", **manifest}
            self._write(self.manifest)

    def append(self, row: dict[str, Any]) -> None:
        """Append one row durably (written whole and fsynced before this returns)."""
        self._write(row)
        self.rows.append(row)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write(self, row: dict[str, Any]) -> None:
        if self._fd is None:
            raise RuntimeError(f"{type(self).__name__}.open() first")
        data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:  # O_APPEND + one write is atomic for regular files; loop on short writes
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_jsonl_atomic(rows: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write ``rows`` as JSONL under a temporary name, fsync, then rename: readers never see half.

    Returns:
        The path written.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)
    return p
