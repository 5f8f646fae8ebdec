"""The main job: THOR's whole pipeline on the embedded model, in minutes on a CPU.

See :func:`thor.demo.pipeline.run_demo` (``thor demo``).
"""

from __future__ import annotations

from thor.demo.pipeline import PRESETS, DemoConfig, DemoResult, run_demo

__all__ = ["PRESETS", "DemoConfig", "DemoResult", "run_demo"]
