"""The results file of an evaluation: a manifest line, then one JSON line per episode.

Lines are appended whole (one ``write`` on an ``O_APPEND`` descriptor, then ``fsync``), so a run
killed at any moment leaves at most one half-written last line; :meth:`ResultsFile.load` detects it,
says so and cuts it off, and a resumed run continues with nothing lost or counted twice. The
mechanism is the generic :class:`thor.io.jsonl.JsonlLog`; this class adds episodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from thor.io.jsonl import JsonlLog
from thor.types import Episode

__all__ = ["ResultsFile"]


class ResultsFile(JsonlLog):
    """Append-only JSONL results with a manifest, safe against being killed mid-write.

    Args:
        path: the JSONL file (created with its directory if missing).
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, kind="results", row_type="episode")

    @property
    def records(self) -> list[dict[str, Any]]:
        """The episode rows (each ``{"type": "episode", **extra, "episode": {...}}``)."""
        return self.rows

    def append_episode(self, episode: Episode, **extra: Any) -> None:
        """Append one finished episode (with ``extra`` fields such as ``correct``) durably."""
        self.append({"type": "episode", **extra, "episode": episode.model_dump(mode="json")})

    def episodes(self) -> list[Episode]:
        return [Episode.model_validate(r["episode"]) for r in self.records]

    def done_ids(self) -> set[str]:
        return {r["episode"]["id"] for r in self.records}

    def __enter__(self) -> ResultsFile:
        return self
