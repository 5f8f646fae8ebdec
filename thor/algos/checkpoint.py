"""Checkpoints that survive being killed at any moment, and resume exactly.

A checkpoint is a directory ``checkpoint-STEP`` (model weights, optimizer, RNG states, the data
position, the trainer state) written under a temporary name and renamed into place; the file
``latest`` names the newest complete one and is replaced atomically. A run killed mid-save leaves
the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["latest_checkpoint", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(root: Path, step: int, payload: dict[str, Any], *, keep: int = 1) -> Path:
    """Write ``payload`` (tensors and picklable state) as checkpoint ``step`` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"checkpoint-{step}"
    tmp = root / f".checkpoint-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(payload, tmp / "state.pt")
    with (tmp / "state.pt").open("rb") as fh:
        os.fsync(fh.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    pointer = root / ".latest.tmp"
    pointer.write_text(json.dumps({"step": step, "path": final.name}))
    os.replace(pointer, root / "latest")
    olds = sorted(
        (p for p in root.glob("checkpoint-*") if p != final),
        key=lambda p: int(p.name.split("-")[1]),
    )
    for old in olds[: max(0, len(olds) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under ``root``, if any."""
    pointer = root / "latest"
    if not pointer.exists():
        return None
    path = root / json.loads(pointer.read_text())["path"]
    return path if (path / "state.pt").exists() else None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The payload of a checkpoint written by :func:`save_checkpoint` (thor's own trusted files)."""
    return torch.load(path / "state.pt", map_location="cpu", weights_only=False)
