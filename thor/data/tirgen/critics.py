"""The registered TIRGen critics (:data:`thor.registries.CRITICS`), each with its typed config.

========  =====================================================================  ==================
name      critic                                                                 config
========  =====================================================================  ==================
``rule``  :class:`~thor.data.tirgen.rule_critic.RuleCritic`: no model; codes the   RuleCriticConfig
          computations it recognises (made for the synthetic problems)
``llm``   :class:`~thor.data.tirgen.critic.LLMCritic`: a prompted policy (the      LLMCriticConfig
          paper's); without a ``model`` it shares the actor's
``gsm8k`` :class:`~thor.data.tirgen.gsm8k_critic.GSM8KCritic`: GSM8K's            GSM8KCriticConfig
          ``<<expression=value>>`` annotations become cells
========  =====================================================================  ==================

:func:`make_critic` builds one by name; a plugin adds its own with
``CRITICS.register("name", config=MyConfig, factory=MyCritic)``.

Example:
    >>> make_critic("gsm8k", {"max_blocks": 3}).max_blocks
    3
    >>> make_critic("rul")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    thor.errors.UnknownNameError: unknown critic 'rul'; did you mean 'rule'?
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from thor.config import ThorConfig
from thor.data.tirgen.critic import Critic, LLMCritic
from thor.data.tirgen.gsm8k_critic import GSM8KCritic
from thor.data.tirgen.rule_critic import RuleCritic
from thor.registries import CRITICS

if TYPE_CHECKING:
    from thor.agents.backends.base import Policy

__all__ = ["GSM8KCriticConfig", "LLMCriticConfig", "RuleCriticConfig", "make_critic"]


class RuleCriticConfig(ThorConfig):
    """The rule critic."""

    max_blocks: int = Field(5, ge=1, description="Blocks per step (THOR: at most 5 executions)")


class GSM8KCriticConfig(ThorConfig):
    """The GSM8K rule critic."""

    max_blocks: int = Field(5, ge=1, description="Cells per step; lines share a cell beyond it")


class LLMCriticConfig(ThorConfig):
    """A prompted critic model (the paper: a stronger instruction model)."""

    model: str | None = Field(
        None, description="The critic's model ('embedded', a directory, a file); None: the actor's"
    )
    backend: str = Field("hf", description="A registered policy backend (used when model is set)")
    backend_options: dict[str, Any] = Field(default_factory=dict)
    temperature: float = Field(0.0, ge=0.0)
    max_tokens: int = Field(1024, ge=16, description="Cap on a rewrite's length")
    extra_tokens: int = Field(192, ge=0, description="Room for code beyond the longest step")
    seed: int = 0


def _llm(cfg: LLMCriticConfig) -> LLMCritic:
    policy: Policy | None = None
    if cfg.model is not None:
        from thor.registries import POLICIES

        policy = POLICIES.make(cfg.backend, model=cfg.model, **cfg.backend_options)
    return LLMCritic(
        policy,
        temperature=cfg.temperature,
        max_tokens=cfg.max_tokens,
        extra_tokens=cfg.extra_tokens,
        seed=cfg.seed,
    )


CRITICS.register(
    "rule",
    config=RuleCriticConfig,
    factory=lambda cfg: RuleCritic(max_blocks=cfg.max_blocks),
    description="No model: codes the computations it recognises in a step",
)
CRITICS.register(
    "llm",
    config=LLMCriticConfig,
    factory=_llm,
    description="A prompted policy rewrites each step (THOR's critic)",
)
CRITICS.register(
    "gsm8k",
    config=GSM8KCriticConfig,
    factory=lambda cfg: GSM8KCritic(max_blocks=cfg.max_blocks),
    description="GSM8K's <<expression=value>> annotations become python cells",
)


def make_critic(
    name: str, options: dict[str, Any] | None = None, *, actor: Policy | None = None
) -> Critic:
    """The critic registered as ``name``, built from ``options`` (validated by its config).

    A critic that asks for a model (it has ``bind`` and no policy yet) gets ``actor``'s.

    Raises:
        UnknownNameError: no critic has that name (with suggestions).
        ConfigError: an option is unknown or invalid, or a critic needs a model and none is given.
    """
    critic: Critic = CRITICS.make(name, **(options or {}))
    bind = getattr(critic, "bind", None)
    if callable(bind) and getattr(critic, "policy", None) is None:
        if actor is None:
            from thor.errors import ConfigError

            raise ConfigError(f"critic {name!r} needs a model: set its 'model' or give an actor")
        bind(actor)
    return critic
