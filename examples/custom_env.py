"""A custom env composed from thor's parts: write a function, hidden tests grade it in the sandbox.

Composed from: the text protocol (:func:`thor.text.protocol.find_code_block`), a sandbox session
(:class:`thor.envs.sandbox.LocalSandbox`), the typed results (:func:`thor.failed`) and the reward
machinery (:class:`thor.rewards.Weighted`-style terms in ``info``). It is a plain gymnasium env,
registered so that ``gymnasium.make("examples/FunctionTests-v0")`` works.

    python examples/custom_env.py
"""

from __future__ import annotations

from typing import Any

import gymnasium
from pydantic import Field

import thor
from thor.config import ThorConfig
from thor.envs.sandbox import LocalSandbox
from thor.envs.spaces import UnicodeText
from thor.text.protocol import find_code_block
from thor.types import failed

TASKS = [
    {
        "prompt": "Write a python function `add(a, b)` that returns a + b.",
        "tests": ["add(1, 2) == 3", "add(-1, 1) == 0", "add(10**20, 1) == 10**20 + 1"],
    },
    {
        "prompt": "Write a python function `is_prime(n)` for integers n >= 0.",
        "tests": ["is_prime(2)", "not is_prime(1)", "is_prime(97)", "not is_prime(91)"],
    },
]


class FunctionTestsConfig(ThorConfig):
    timeout_s: float = Field(10.0, gt=0)
    format_weight: float = Field(0.1, ge=0)


class FunctionTestsEnv(gymnasium.Env[str, str]):
    """One step: the model answers with a python block; reward = share of hidden tests passed."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(self, config: FunctionTestsConfig | None = None) -> None:
        self.config = config or FunctionTestsConfig()
        self.observation_space = UnicodeText(4096)
        self.action_space = UnicodeText(1 << 16)
        self._task: dict[str, Any] = TASKS[0]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self._task = TASKS[int(self.np_random.integers(len(TASKS)))]
        return self._task["prompt"], {}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        block = find_code_block(action)
        terms = {"format": 1.0 if block is not None else 0.0, "tests": 0.0}
        if block is not None:
            with LocalSandbox.shared().open() as session:
                session.run(block.code, timeout_s=self.config.timeout_s)
                checks = "\n".join(f"print(bool({t}))" for t in self._task["tests"])
                result = session.run(checks, timeout_s=self.config.timeout_s)
            if not failed(result):
                passed = result.stdout.split().count("True")
                terms["tests"] = passed / len(self._task["tests"])
        reward = terms["tests"] + self.config.format_weight * terms["format"]
        return "", reward, True, False, {"reward_terms": terms}


thor.ENVS.register(
    "examples/FunctionTests-v0",
    config=FunctionTestsConfig,
    factory=FunctionTestsEnv,
    description="Write a function; hidden tests run in the sandbox",
)


def main() -> list[float]:
    env = gymnasium.make("examples/FunctionTests-v0")
    rewards = []
    for answer in (
        "```python\ndef add(a, b):\n    return a + b\n```",
        "```python\ndef add(a, b):\n    return a - b\n```",
        "no code at all",
    ):
        env.reset(options={})
        env.unwrapped._task = TASKS[0]
        _, reward, *_ = env.step(answer)
        rewards.append(reward)
    env.close()
    print("rewards:", rewards)
    return rewards


if __name__ == "__main__":
    main()
