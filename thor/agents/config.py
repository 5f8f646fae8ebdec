"""Configuration of a rollout: the agent, the env and the engine's batching.

The agent and the env are chosen by registry name with their own typed configs, so no field is
declared twice: sampling lives in the agent's config, budgets, tools, rewards and sandboxes in the
env's.

Example:
    >>> cfg = RolloutConfig(agent={"name": "thor", "max_retries": 2}, env={"max_rounds": 3})
    >>> cfg.agent.config.max_retries, cfg.env.name, cfg.env.config.max_rounds
    (2, 'thor/MathTIR-v0', 3)
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from thor.config import ThorConfig
from thor.errors import UnknownNameError
from thor.registries import AGENTS, ENVS, AgentSpec, EnvSpec

__all__ = ["RolloutConfig"]


class RolloutConfig(ThorConfig):
    """How episodes are generated: the agent (with its sampling), the env and the batching.

    ``env`` may omit its name: the agent's default env is used (``thor/MathCoT-v0`` for ``cot``,
    ``thor/MathTIR-v0`` otherwise). A sandbox failure is recorded as a failed call unless the env
    config says otherwise.
    """

    agent: AgentSpec = Field(default_factory=lambda: AgentSpec.model_validate("tir"))
    env: EnvSpec | None = Field(None, description="Default: the agent's env with its defaults")
    batch_size: int = Field(16, ge=1, description="Episodes in flight")
    cohorts: int = Field(
        2, ge=1, description="Groups that alternate: one generates while another's code runs"
    )
    exec_workers: int = Field(4, ge=1, description="Threads that drive sandbox calls and rewards")

    @model_validator(mode="before")
    @classmethod
    def _default_env(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("env"), dict):
            return data
        env = dict(data["env"])
        if "name" not in env:
            agent = data.get("agent", "tir")
            name = agent if isinstance(agent, str) else getattr(agent, "name", None)
            if isinstance(agent, dict):
                name = agent.get("name")
            try:
                factory = AGENTS.entry(str(name)).factory if name else None
                env["name"] = getattr(factory, "default_env", "thor/MathTIR-v0")
                fields = ENVS.entry(env["name"]).config.model_fields
            except UnknownNameError as err:
                raise ValueError(str(err)) from None
            if "on_sandbox_error" in fields:  # thor's envs: record a broken sandbox, go on
                env.setdefault("on_sandbox_error", "record")
        return {**data, "env": env}

    def env_spec(self, agent: Any = None) -> EnvSpec:
        """The env to run: ``env``, else the agent's default env (sandbox errors recorded)."""
        if self.env is not None:
            return self.env
        default = getattr(agent, "default_env", None) or getattr(
            AGENTS.entry(self.agent.name).factory, "default_env", "thor/MathTIR-v0"
        )
        return EnvSpec.model_validate({"name": default, "on_sandbox_error": "record"})

    def with_agent(self, **fields: Any) -> RolloutConfig:
        """A copy whose agent config has ``fields`` replaced."""
        return self.model_copy(update={"agent": self.agent.with_fields(**fields)})

    def with_env(self, **fields: Any) -> RolloutConfig:
        """A copy whose env config has ``fields`` replaced (the default env if none is set)."""
        return self.model_copy(update={"env": self.env_spec().with_fields(**fields)})
