"""The few exceptions thor raises.

Errors in *model* code are data (an :class:`~thor.types.ExecResult` with ``status="error"``);
these exceptions are for broken infrastructure, broken configuration and misuse.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatasetError",
    "IsolationError",
    "PolicyError",
    "RewardError",
    "SandboxError",
    "ThorError",
    "UnknownNameError",
]


class ThorError(Exception):
    """Base class of every error thor raises on purpose."""


class ConfigError(ThorError, ValueError):
    """A configuration value is invalid; the message names the field and what to set instead."""


class UnknownNameError(ThorError, KeyError):
    """A registry lookup failed; the message suggests the closest registered names."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class SandboxError(ThorError):
    """The sandbox itself failed (not the code it ran): a dead template, a broken pipe, a bad reply."""


class IsolationError(SandboxError):
    """Isolation is required but not available; the message says how to fix it."""


class PolicyError(ThorError):
    """A policy backend failed: a model that cannot load, a server that returned garbage or died."""


class RewardError(ThorError):
    """A reward function raised; carries the reward's name and the episode id."""

    def __init__(
        self, message: str = "", *, reward: str | None = None, episode_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.reward = reward
        self.episode_id = episode_id

    def __reduce__(self) -> tuple[object, ...]:  # keep the fields across processes (Ray, pools)
        return (_rebuild_reward_error, (str(self), self.reward, self.episode_id))


def _rebuild_reward_error(message: str, reward: str | None, episode_id: str | None) -> RewardError:
    return RewardError(message, reward=reward, episode_id=episode_id)


class DatasetError(ThorError):
    """A dataset or benchmark file cannot be read, or a line lacks a required field."""
