"""The record of a TIRGen run: one line per processed problem, kept or dropped, with the reason.

``records.jsonl`` in the output directory is an append-only :class:`~thor.io.jsonl.JsonlLog`: a
manifest line (the run's settings), then one ``{"type": "problem", ...}`` line per problem,
appended durably the moment the problem is done. It is the run's source of truth: a resumed run
skips exactly the problems it names, and the SFT file and the funnel are derived from it.

Example:
    >>> import tempfile, pathlib
    >>> store = TirgenStore(pathlib.Path(tempfile.mkdtemp()) / "records.jsonl")
    >>> store.load(); store.open({"run": "demo"})
    >>> store.append_record({"problem_id": "p1", "status": "dropped", "stage": "answer"})
    True
    >>> store.append_record({"problem_id": "p1", "status": "kept"})  # already processed: refused
    False
    >>> store.done_ids()
    {'p1'}
    >>> store.close()
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from thor.io.jsonl import JsonlLog

__all__ = ["TirgenStore"]

log = logging.getLogger(__name__)


class TirgenStore(JsonlLog):
    """Append-only record of processed problems (see the module docstring).

    Args:
        path: the ``records.jsonl`` file.

    Attributes:
        duplicates: lines dropped by :meth:`load` because their problem was already recorded.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, kind="tirgen records", row_type="problem")
        self.duplicates = 0
        self._done: set[str] = set()

    def load(self) -> None:
        """Read the record; a torn last line is dropped (with a warning), duplicates are ignored."""
        super().load()
        rows: list[dict[str, Any]] = []
        self._done, self.duplicates = set(), 0
        for row in self.rows:
            pid = str(row.get("problem_id"))
            if pid in self._done:
                self.duplicates += 1
                continue
            self._done.add(pid)
            rows.append(row)
        if self.duplicates:
            log.warning("%s: ignoring %d duplicate problem lines", self.path, self.duplicates)
        self.rows = rows

    def done_ids(self) -> set[str]:
        """Ids of every problem already processed (kept or dropped)."""
        return set(self._done)

    def append_record(self, record: dict[str, Any]) -> bool:
        """Append one processed problem; ``False`` (nothing written) when it is already recorded."""
        pid = str(record["problem_id"])
        if pid in self._done:
            log.warning("%s: problem %s is already recorded; not writing it twice", self.path, pid)
            return False
        self.append({"type": "problem", **record})
        self._done.add(pid)
        return True
