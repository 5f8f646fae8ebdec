"""The small protocol an env must offer for the rollout engine to drive it, and env factories.

Any env with these methods works with every agent, in evaluation, training and TIRGen:
:class:`~thor.envs.tir.TIREnv` is one; a user's env with another tool (another call syntax, another
executor) is another. The engine asks the env for the stop rule to give the policy, whether a turn
would call a tool, how much budget is left; it acts whole turns (with their token ids and
logprobs) and forks the env for self-correction and step-level RL.

Example:
    >>> from thor.agents.env import AgentEnv, env_factory
    >>> make = env_factory({"name": "thor/MathTIR-v0", "max_rounds": 2})
    >>> env = make()
    >>> _ = env.reset(options={"problem": "1+1?", "answer": "2"})
    >>> isinstance(env, AgentEnv), env.config.max_rounds, env.stop_rule().code_close
    (True, 2, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from thor.registries import EnvSpec
from thor.text.protocol import StopRule
from thor.types import Episode, Turn

__all__ = ["AgentEnv", "EnvFactory", "env_factory"]


@runtime_checkable
class AgentEnv(Protocol):
    """What the rollout engine needs from an env (``TIREnv`` implements it)."""

    @property
    def episode(self) -> Episode:
        """The episode so far; the engine attaches prompt token ids to it."""
        ...

    @property
    def tokens_left(self) -> int:
        """The response budget left (model text and tool outputs)."""
        ...

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode; ``info["messages"]`` holds the chat messages to prompt with."""
        ...

    def act(self, turn: Turn) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Take one model turn (with its token ids): gymnasium's ``step`` for a typed turn."""
        ...

    def fork(self) -> AgentEnv:
        """An independent copy of the episode so far, tool state included; the caller closes it."""
        ...

    def close(self) -> None: ...

    def stop_rule(self) -> StopRule:
        """Where the policy must stop a turn that calls the env's tool."""
        ...

    def will_call(self, text: str) -> bool:
        """Whether acting ``text`` now would run a tool call."""
        ...


EnvFactory = Callable[[], AgentEnv]
"""A zero-argument callable that builds a fresh env (the engine resets it per episode)."""


def env_factory(
    env: EnvSpec | dict[str, Any] | str | EnvFactory,
    **runtime: Any,
) -> EnvFactory:
    """A factory of unwrapped envs from an env spec (an ``ENVS`` id with its config) or a callable.

    Args:
        env: an :class:`~thor.registries.EnvSpec` (or its dict / id form), or a callable returning
            an env (used as it is).
        runtime: runtime objects the env's constructor takes (``tokenizer``, ``sandbox``,
            ``reward_fn``, ``problems``...), passed through :func:`thor.make`.
    """
    if callable(env) and not isinstance(env, (str, dict, EnvSpec)):
        return env
    spec = env if isinstance(env, EnvSpec) else EnvSpec.model_validate(env)

    def make() -> AgentEnv:
        import thor

        built = thor.make(spec.name, config=spec.config, **runtime)
        env: AgentEnv = built.unwrapped
        return env

    return make
