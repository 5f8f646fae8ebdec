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
from thor.registries import AGENTS, ALGORITHMS, DATASETS, ENVS, POLICIES, REWARDS, SANDBOXES, TOOLS
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
    """Build a registered environment by its versioned name, validating ``kwargs`` by its config.

    Example:
        >>> env = thor.make("thor/MathTIR-v0", max_rounds=3)  # doctest: +SKIP
    """
    return ENVS.make(name, **kwargs)


import thor.envs  # noqa: E402,F401  (registers thor's envs with gymnasium on `import thor`)
