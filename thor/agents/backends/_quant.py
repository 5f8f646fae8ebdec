"""int8 copies of a model's linear weights for generation, kept in step with the float weights.

On a CPU, decoding reads every weight once per step: at batch 1 that traffic is the whole cost,
and int8 weights (a quarter of float32) cut it. :class:`Int8Linears` holds, for each linear module
of a model, its weight quantised per output channel (symmetric int8) and packed for PyTorch's
dynamic-quantised linear kernel (fbgemm: activations quantised per call, int8 products, float
output). The float model stays the one that is trained; :meth:`Int8Linears.refresh` re-quantises
exactly the modules whose parameters changed since the last call (PyTorch's in-place version
counters: an optimizer step or ``load_state_dict`` bumps them), so generation after a weight update
always runs the updated weights. Quantised weights are not exact: greedy outputs can differ from
float32 ones (benchmarks/cpu_speed.py reports the agreement).

Example:
    >>> import torch
    >>> from thor.testing import tiny_model
    >>> model = tiny_model()
    >>> q = Int8Linears(model) if int8_available() else None
    >>> q is None or q.refresh() > 0
    True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["Int8Linears", "int8_available"]


def int8_available() -> bool:
    """Whether this PyTorch has the CPU dynamic-quantised linear kernels (fbgemm / x86)."""
    engines = getattr(torch.backends.quantized, "supported_engines", [])
    return bool({"fbgemm", "x86"} & set(engines)) and hasattr(torch.ops.quantized, "linear_dynamic")


def _reduce_range() -> bool:
    """Use 7-bit activations where the int8 dot product could saturate (AVX2 without VNNI)."""
    from thor.hardware import cpu_flags

    return not ({"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags())


def _stamp(module: Any) -> tuple[int, ...]:
    stamp: list[int] = []
    for p in (module.weight, getattr(module, "bias", None)):
        if p is not None:
            stamp += [int(p._version), int(p.data_ptr())]
    return tuple(stamp)


class Int8Linears:
    """Packed int8 weights of every ``torch.nn.Linear`` in ``model``; call as ``linear(module, x)``.

    Args:
        model: a float model on the CPU (its linear layers are quantised, nothing else).
        skip: names (suffixes) of linear modules to keep in float, e.g. ``("lm_head",)``.
    """

    def __init__(self, model: Any, *, skip: tuple[str, ...] = ()) -> None:
        if not int8_available():
            raise RuntimeError("this PyTorch build has no dynamic-quantised linear kernels")
        self.modules = {
            id(m): m
            for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and not name.endswith(skip)
        }
        self._packed: dict[int, Any] = {}
        self._stamps: dict[int, tuple[int, ...]] = {}
        self.reduce_range = _reduce_range()

    def refresh(self) -> int:
        """Re-quantise the modules whose parameters changed; returns how many were."""
        changed = 0
        with torch.no_grad():
            for key, module in self.modules.items():
                stamp = _stamp(module)
                if self._stamps.get(key) != stamp:
                    self._packed[key] = _pack(module)
                    self._stamps[key] = stamp
                    changed += 1
        return changed

    def __call__(self, module: Any, x: Tensor) -> Tensor:
        packed = self._packed.get(id(module))
        if packed is None:
            return module(x)
        flat = x.reshape(-1, x.shape[-1])
        if not flat.is_contiguous():
            flat = flat.contiguous()
        out = torch.ops.quantized.linear_dynamic(flat, packed, self.reduce_range)
        return out.view(*x.shape[:-1], out.shape[-1])


def _pack(module: Any) -> Any:
    w = module.weight.detach().float()
    scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()
    zero = torch.zeros(w.shape[0], dtype=torch.long)
    qw = torch.quantize_per_channel(w, scale, zero, 0, torch.qint8)
    bias = module.bias.detach().float() if module.bias is not None else None
    return torch.ops.quantized.linear_prepack(qw, bias)
