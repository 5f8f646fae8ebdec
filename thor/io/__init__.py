"""Small, generic file helpers shared by thor's parts (append-only JSONL logs, atomic writes)."""

from __future__ import annotations

from thor.io.jsonl import JsonlLog, write_jsonl_atomic

__all__ = ["JsonlLog", "write_jsonl_atomic"]
