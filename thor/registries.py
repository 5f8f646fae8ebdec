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

__all__ = ["AGENTS", "ALGORITHMS", "DATASETS", "ENVS", "POLICIES", "REWARDS", "SANDBOXES", "TOOLS"]

ENVS: Registry[gymnasium.Env[Any, Any]] = Registry("env", versioned=True, modules=("thor.envs",))
"""Environments, also registered with gymnasium (``gymnasium.make("thor/MathTIR-v0")``)."""

TOOLS: Registry[Any] = Registry("tool", modules=("thor.envs.tools",))
"""Tools an env can call (python by default)."""

SANDBOXES: Registry[Any] = Registry("sandbox", modules=("thor.envs.sandbox",))
"""Code executors: ``local`` (bubblewrap-isolated, forkable) and ``remote`` (SandboxFusion API)."""

REWARDS: Registry[Any] = Registry("reward", modules=("thor.rewards",))
"""Reward functions over an episode."""

POLICIES: Registry[Any] = Registry("policy", modules=("thor.agents.backends",))
"""Policy backends: ``hf``, ``vllm``, ``openai``."""

AGENTS: Registry[Any] = Registry("agent", modules=("thor.agents",))
"""Inference agents: ``cot``, ``tir``, ``thor`` (TIR with self-correction)."""

ALGORITHMS: Registry[Any] = Registry("algorithm", modules=("thor.algos",))
"""Training algorithms: ``grpo``, ``thor`` (trajectory + step level), variants."""


# -- specs: a part chosen by registry name with its typed config, for use inside other configs --
from thor.registry import PartSpec  # noqa: E402


class AgentSpec(PartSpec):
    """An agent by name with its config: ``"thor"`` or ``{"name": "thor", "max_retries": 2}``."""

    registry = AGENTS


class EnvSpec(PartSpec):
    """An env by id with its config: ``{"name": "thor/MathTIR-v0", "max_rounds": 3}``."""

    registry = ENVS


class PolicySpec(PartSpec):
    """A policy backend by name with its config: ``{"name": "vllm", "model": "embedded"}``."""

    registry = POLICIES


class RewardSpec(PartSpec):
    """A reward by name with its config: ``{"name": "exec_success"}``."""

    registry = REWARDS


__all__ += ["AgentSpec", "EnvSpec", "PolicySpec", "RewardSpec"]
