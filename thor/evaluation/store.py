"""The results file of an evaluation: a manifest line, then one JSON line per episode.

Lines are appended whole (one ``write`` on an ``O_APPEND`` descriptor, then ``fsync``), so a run
killed at any moment leaves at most one half-written last line; :meth:`ResultsFile.load` detects it,
says so and cuts it off, and a resumed run continues with nothing lost or counted twice.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from thor.errors import ConfigError, ThorError
from thor.types import Episode

__all__ = ["ResultsFile"]

log = logging.getLogger(__name__)


class ResultsFile:
    """Append-only JSONL results with a manifest, safe against being killed mid-write.

    Args:
        path: the JSONL file (created with its directory if missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest: dict[str, Any] | None = None
        self.records: list[dict[str, Any]] = []
        self._fd: int | None = None

    def load(self) -> None:
        """Read what a previous run wrote; a torn last line is reported and removed."""
        self.manifest, self.records = None, []
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        good = raw.rfind(b"\n") + 1
        if good < len(raw):
            log.warning(
                "%s: dropping a half-written last line (%d bytes) left by an interrupted run",
                self.path,
                len(raw) - good,
            )
            with self.path.open("r+b") as fh:
                fh.truncate(good)
            raw = raw[:good]
        for lineno, line in enumerate(raw.decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ThorError(f"{self.path}:{lineno}: not a results line ({err.msg})") from None
            if row.get("type") == "manifest":
                if self.manifest is None:
                    self.manifest = row
            elif row.get("type") == "episode":
                self.records.append(row)
        if self.records and self.manifest is None:
            raise ThorError(
                f"{self.path}: results without a manifest line; not a thor results file"
            )

    def check_manifest(
        self, manifest: dict[str, Any], *, ignore: tuple[str, ...] = ("created", "thor_version")
    ) -> None:
        """Refuse to resume when the stored run was made with a different configuration."""
        if self.manifest is None:
            return
        stored = {k: v for k, v in self.manifest.items() if k not in ignore}
        new = {k: v for k, v in manifest.items() if k not in ignore}
        diffs = sorted(k for k in set(stored) | set(new) if stored.get(k) != new.get(k))
        if diffs:
            details = "; ".join(f"{k}: stored {stored.get(k)!r}, now {new.get(k)!r}" for k in diffs)
            raise ConfigError(
                f"{self.path} was written with a different configuration ({details}). "
                "Resume with the same settings, or write to another --out file."
            )

    def open(self, manifest: dict[str, Any]) -> None:
        """Open for appending; writes the manifest when the file is new."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if self.manifest is None:
            self.manifest = {"type": "manifest", **manifest}
            self._append(self.manifest)

    def append_episode(self, episode: Episode, **extra: Any) -> None:
        """Append one finished episode (with ``extra`` fields such as ``correct``) durably."""
        row = {"type": "episode", **extra, "episode": episode.model_dump(mode="json")}
        self._append(row)
        self.records.append(row)

    def episodes(self) -> list[Episode]:
        return [Episode.model_validate(r["episode"]) for r in self.records]

    def done_ids(self) -> set[str]:
        return {r["episode"]["id"] for r in self.records}

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _append(self, row: dict[str, Any]) -> None:
        if self._fd is None:
            raise RuntimeError("ResultsFile.open() first")
        data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:  # O_APPEND + one write is atomic for regular files; loop on short writes
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
