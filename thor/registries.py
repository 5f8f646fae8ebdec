"""The registries of thor's parts, in one place so that every part is easy to find.

Each registry imports the modules that fill it on its first lookup, so ``import thor`` stays light.
Third-party packages add entries through the ``thor.plugins`` entry-point group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from thor.data.loaders import DATASETS
from thor.registry import Registry

if TYPE_CHECKING:
    import gymnasium

__all__ = [
    "AGENTS",
    "ALGORITHMS",
    "CRITICS",
    "DATASETS",
    "ENVS",
    "POLICIES",
    "REWARDS",
    "SANDBOXES",
    "TOOLS",
]

ENVS: Registry[gymnasium.Env[Any, Any]] = Registry("env", versioned=True, modules=("thor.envs",))
"""Environments, also registered with gymnasium (``gymnasium.make("thor/MathTIR-v0")``)."""

TOOLS: Registry[Any] = Registry("tool", modules=("thor.envs.tools",))
"""Tools an env can call (python by default)."""

SANDBOXES: Registry[Any] = Registry("sandbox", modules=("thor.envs.sandbox",))
"""Code executors: ``local`` (bubblewrap-isolated, forkable) and ``remote`` (SandboxFusion API)."""

REWARDS: Registry[Any] = Registry("reward", modules=("thor.rewards", "thor.rewards.gsm8k"))
"""Reward functions over an episode."""

POLICIES: Registry[Any] = Registry("policy", modules=("thor.agents.backends",))
"""Policy backends: ``hf``, ``vllm``, ``openai``."""

AGENTS: Registry[Any] = Registry("agent", modules=("thor.agents",))
"""Inference agents: ``cot``, ``tir``, ``thor`` (TIR with self-correction)."""

CRITICS: Registry[Any] = Registry("critic", modules=("thor.data.tirgen.critics",))
"""TIRGen critics: ``rule`` (no model), ``llm`` (a prompted policy), ``gsm8k`` (GSM8K's annotations)."""

ALGORITHMS: Registry[Any] = Registry("algorithm", modules=("thor.algos",))
"""Training algorithms: ``grpo``, ``thor`` (trajectory + step level), variants."""
