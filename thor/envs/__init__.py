"""Environments: tool-integrated reasoning as gymnasium envs, tools and sandboxes.

Every env registered in :data:`thor.ENVS` is also registered with gymnasium, so
``thor.make(id, **kwargs)`` and ``gymnasium.make(id, **kwargs)`` build the same wrapped env (with
its ``spec`` and gymnasium's checker): keyword arguments are the env's config fields, or
``config=`` a config object, plus the runtime objects its constructor takes (``tokenizer``,
``sandbox``, ``reward_fn``, ``problems``, ``tool``). In a fresh interpreter that has not imported
thor, ``gymnasium.make("thor:thor/MathTIR-v0")`` (gymnasium's module-prefixed id) imports thor
and registers its envs first.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import gymnasium

from thor.config import validate_config
from thor.errors import ConfigError
from thor.registries import ENVS
from thor.registry import Entry

__all__ = ["TIREnv", "TIREnvConfig", "build_env"]


def build_env(name: str, /, **kwargs: Any) -> Any:
    """Build the bare env registered as ``name``: config fields (or ``config=``) plus runtime objects."""
    entry = ENVS.entry(name)
    runtime_names = _runtime_parameters(entry.factory)
    runtime = {k: kwargs.pop(k) for k in list(kwargs) if k in runtime_names}
    config = kwargs.pop("config", None)
    if config is not None and kwargs:
        raise ConfigError(f"{name}: pass config= or config fields, not both ({sorted(kwargs)})")
    cfg = validate_config(entry.config, config if config is not None else kwargs)
    return entry.factory(cfg, **runtime)


@functools.cache
def _runtime_parameters(factory: Any) -> frozenset[str]:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return frozenset()
    return frozenset(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def _register_with_gymnasium(entry: Entry[Any]) -> None:
    if entry.name not in gymnasium.registry:
        gymnasium.register(id=entry.name, entry_point=functools.partial(build_env, entry.name))


ENVS.on_register(_register_with_gymnasium)

from thor.envs.tir import TIREnv, TIREnvConfig  # noqa: E402  (registers the envs)
