"""Test tiers: markers ``slow``, ``vllm`` and ``gpu`` (see scripts/test.sh)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cuda = None
    vllm_python = ROOT / ".venv-vllm" / "bin" / "python"
    require_vllm = os.environ.get("THOR_REQUIRE_VLLM") == "1"
    for item in items:
        if "gpu" in item.keywords:
            if cuda is None:
                cuda = _has_cuda()
            if not cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if "vllm" in item.keywords and not vllm_python.exists() and not require_vllm:
            item.add_marker(pytest.mark.skip(reason="needs .venv-vllm (make vllm-env)"))
