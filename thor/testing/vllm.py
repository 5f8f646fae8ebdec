"""The guard of the vLLM test tier: skip where vllm is absent, unless the tier was asked for."""

from __future__ import annotations

import importlib.util
import os

__all__ = ["skip_without_vllm"]


def skip_without_vllm() -> None:
    """Skip the calling test module when vllm cannot be imported.

    With ``THOR_REQUIRE_VLLM=1`` (how ``scripts/test.sh vllm`` runs the tier) a missing vllm is an
    error instead, so a broken ``.venv-vllm`` cannot pass as a tier of skipped tests.
    """
    if importlib.util.find_spec("vllm") is not None:
        return
    if os.environ.get("THOR_REQUIRE_VLLM") == "1":
        raise RuntimeError(
            "THOR_REQUIRE_VLLM=1 but vllm is not importable here: use .venv-vllm/bin/python"
        )
    import pytest

    pytest.skip(
        "vllm is not importable here: run .venv-vllm/bin/python -m pytest -m vllm",
        allow_module_level=True,
    )
