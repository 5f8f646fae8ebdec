"""Environments: tool-integrated reasoning as gymnasium envs, tools, the text protocol, sandboxes.

Every env registered in :data:`thor.ENVS` is also registered with gymnasium, so
``gymnasium.make("thor/MathTIR-v0")`` and ``thor.make("thor/MathTIR-v0")`` build the same env.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium

from thor.registries import ENVS
from thor.registry import Entry

__all__ = ["TIREnv", "TIREnvConfig"]


def _gym_entry_point(name: str, **kwargs: Any) -> gymnasium.Env[Any, Any]:
    return ENVS.make(name, **kwargs)


def _register_with_gymnasium(entry: Entry[Any]) -> None:
    if entry.name not in gymnasium.registry:
        gymnasium.register(
            id=entry.name, entry_point=functools.partial(_gym_entry_point, entry.name)
        )


ENVS.on_register(_register_with_gymnasium)

from thor.envs.tir import TIREnv, TIREnvConfig  # noqa: E402  (registers the envs)
