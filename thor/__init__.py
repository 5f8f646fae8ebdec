"""thor: tool-integrated mathematical reasoning with LLMs, trained by hierarchical RL.

An implementation of THOR (Chang et al., arXiv 2509.13761) as a library: environments whose step
runs code in an isolated, forkable sandbox; policy backends and agents (TIR, self-correction,
best-of-N); answer verification and reward shapers; TIRGen data construction; trajectory- and
step-level RL.

Example:
    >>> import thor
    >>> "thor/MathTIR-v0" in thor.ENVS.names()
    True
"""

from __future__ import annotations

from typing import Any

from thor.errors import (
    ConfigError,
    DatasetError,
    IsolationError,
    PolicyError,
    RewardError,
    SandboxError,
    ThorError,
    UnknownNameError,
)
from thor.registries import (
    AGENTS,
    ALGORITHMS,
    DATASETS,
    ENVS,
    LOSSES,
    POLICIES,
    REWARDS,
    SANDBOXES,
    TOOLS,
)
from thor.registry import Registry
from thor.types import (
    Completion,
    DiscardedAttempt,
    Episode,
    ExecResult,
    Problem,
    SamplingParams,
    ToolCall,
    Turn,
    failed,
)

__version__ = "0.1.0"

__all__ = [
    "AGENTS",
    "ALGORITHMS",
    "DATASETS",
    "ENVS",
    "LOSSES",
    "POLICIES",
    "REWARDS",
    "SANDBOXES",
    "TOOLS",
    "Completion",
    "ConfigError",
    "DatasetError",
    "DiscardedAttempt",
    "Episode",
    "ExecResult",
    "IsolationError",
    "PolicyError",
    "Problem",
    "Registry",
    "RewardError",
    "SamplingParams",
    "SandboxError",
    "ThorError",
    "ToolCall",
    "Turn",
    "UnknownNameError",
    "__version__",
    "failed",
    "make",
]


def make(name: str, /, **kwargs: Any) -> Any:
    """Build a registered environment by its versioned name: ``gymnasium.make`` on thor's registry.

    Keyword arguments are the env's config fields (validated, with did-you-mean) or ``config=`` a
    config object, plus runtime objects (``tokenizer``, ``sandbox``, ``reward_fn``, ``problems``).
    The env comes wrapped as ``gymnasium.make`` wraps it (checker, order enforcing, ``spec``);
    ``env.unwrapped`` is the env itself.

    Example:
        >>> import thor
        >>> env = thor.make("thor/MathTIR-v0", max_rounds=3)
        >>> env.spec.id, env.unwrapped.config.max_rounds
        ('thor/MathTIR-v0', 3)
    """
    import gymnasium

    ENVS.entry(name)  # registers thor's envs (and plugins') with gymnasium; did-you-mean on a typo
    return gymnasium.make(name, **kwargs)


def _register_with_gymnasium_if_loaded() -> None:
    """``gymnasium.make("thor:thor/MathTIR-v0")`` imports thor: register the envs then."""
    import sys

    if "gymnasium" in sys.modules:
        ENVS.names()


_register_with_gymnasium_if_loaded()
