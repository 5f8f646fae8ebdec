"""The registries of thor's parts, in one place so that every part is easy to find.

Each registry imports the modules that fill it on its first lookup, so ``import thor`` stays light.
Third-party packages add entries through the ``thor.plugins`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from thor.registry import Registry

if TYPE_CHECKING:
    import gymnasium

    from thor.agents.backends.base import Policy
    from thor.agents.base import Agent
    from thor.algos.base import Algorithm
    from thor.algos.losses import GRPOLoss
    from thor.data.tirgen.critic import Critic
    from thor.envs.sandbox.base import Sandbox
    from thor.envs.tools import Tool
    from thor.types import Episode, Problem

__all__ = [
    "AGENTS",
    "ALGORITHMS",
    "CRITICS",
    "DATASETS",
    "ENVS",
    "LOSSES",
    "POLICIES",
    "REWARDS",
    "SANDBOXES",
    "TOOLS",
]

DATASETS: Registry[list[Problem]] = Registry("dataset", modules=("thor.data.loaders",))
"""Problem sets by name: the shipped benchmarks, synthetic splits, a user's own."""

ENVS: Registry[gymnasium.Env[Any, Any]] = Registry("env", versioned=True, modules=("thor.envs",))
"""Environments, also registered with gymnasium (``gymnasium.make("thor/MathTIR-v0")``)."""

TOOLS: Registry[Tool] = Registry("tool", modules=("thor.envs.tools",))
"""Tools an env can call (python by default)."""

SANDBOXES: Registry[Sandbox] = Registry("sandbox", modules=("thor.envs.sandbox",))
"""Code executors: ``local`` (bubblewrap-isolated, forkable) and ``remote`` (SandboxFusion API)."""

REWARDS: Registry[Callable[[Episode], float]] = Registry(
    "reward", modules=("thor.rewards", "thor.rewards.gsm8k")
)
"""Reward functions over an episode."""

POLICIES: Registry[Policy] = Registry("policy", modules=("thor.agents.backends",))
"""Policy backends: ``hf``, ``vllm``, ``openai``."""

AGENTS: Registry[Agent] = Registry("agent", modules=("thor.agents",))
"""Inference agents: ``cot``, ``tir``, ``thor`` (TIR with self-correction)."""

CRITICS: Registry[Critic] = Registry("critic", modules=("thor.data.tirgen.critics",))
"""TIRGen critics: ``rule`` (no model), ``llm`` (a prompted policy), ``gsm8k`` (GSM8K's annotations)."""

ALGORITHMS: Registry[Algorithm] = Registry("algorithm", modules=("thor.algos",))
"""Training algorithms: ``grpo``, ``thor`` (trajectory + step level), variants."""

LOSSES: Registry[GRPOLoss] = Registry("loss", modules=("thor.algos.losses",))
"""Policy losses an algorithm trains with: ``grpo`` (THOR's clipped surrogate), a user's own."""


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


class ToolSpec(PartSpec):
    """A tool by name with its config: ``"python"`` or ``{"name": "python", "run_unclosed": true}``."""

    registry = TOOLS


class SandboxSpec(PartSpec):
    """A sandbox by name with its config: ``{"name": "local", "memory_mb": 512}``."""

    registry = SANDBOXES


class AlgorithmSpec(PartSpec):
    """An algorithm by name with its config: ``{"name": "thor", "group_size": 4}``."""

    registry = ALGORITHMS


class LossSpec(PartSpec):
    """A loss by name with its config; a mapping without a name is THOR's ``grpo`` loss."""

    registry = LOSSES
    default_name = "grpo"


__all__ += [
    "AgentSpec",
    "AlgorithmSpec",
    "EnvSpec",
    "LossSpec",
    "PolicySpec",
    "RewardSpec",
    "SandboxSpec",
    "ToolSpec",
]
