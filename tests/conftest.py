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


def _load_example(name: str):  # type: ignore[no-untyped-def]
    """Import ``examples/NAME.py`` once per session (its registrations are idempotent)."""
    import importlib.util
    import sys

    mod_name = f"thor_example_{name}"
    if mod_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(mod_name, ROOT / "examples" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    return sys.modules[mod_name]


@pytest.fixture
def load_example():  # type: ignore[no-untyped-def]
    """A function that imports an example file by name: ``load_example("retry_agent")``."""
    return _load_example
