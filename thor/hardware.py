"""What the machine does fast: used to pick dtypes by default instead of guessing."""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["bf16_is_fast", "cpu_flags"]


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of this machine (empty where /proc/cpuinfo is not readable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def bf16_is_fast(device: str = "cpu") -> bool:
    """Whether bfloat16 matmuls are native on ``device``.

    On a CPU without AVX512-BF16 or AMX, bfloat16 is emulated and measured 2-5x *slower* than
    float32 for SmolLM2 on this project's 2-core machines; on such CPUs thor defaults to float32.
    """
    if device.startswith("cuda"):
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    flags = cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags)
