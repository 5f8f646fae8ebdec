"""A tool that is not python, registered and run as its own env.

The model asks sympy to solve an equation by writing ``<solve>x**2 - 5*x + 6 = 0</solve>``; the
tool runs the solver *inside the episode's sandbox session* (sympy's parser evaluates text, so model
text is only ever parsed where it cannot hurt the host) and renders ``<result>[2, 3]</result>``.

    python examples/solve_tool_env.py
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field

import thor
from thor.config import ThorConfig
from thor.envs import TIREnv, TIREnvConfig
from thor.envs.tools import Tool, ToolContext
from thor.registries import ToolSpec
from thor.text import StopRule
from thor.types import ExecResult, ToolCall

CALL = re.compile(r"<solve>(.*?)</solve>\s*$", re.DOTALL)

SYSTEM = (
    "Solve the problem. To solve an equation, write <solve>EQUATION</solve> (e.g. "
    "<solve>x**2 - 4 = 0</solve>); the solutions come back in <result>...</result>. "
    "Put your final answer within \\boxed{}."
)


class SolveToolConfig(ThorConfig):
    """The solve tool has no settings; a config is still required (it validates kwargs)."""


class SolveTool(Tool):
    """``<solve>lhs = rhs</solve>`` -> the solutions of the equation, from sympy, in the sandbox."""

    name = "solve"
    stop_rule: ClassVar[StopRule] = StopRule(stop=("</solve>",))  # what the policy stops on

    def __init__(self, config: SolveToolConfig | None = None) -> None:
        super().__init__()

    def find_call(self, action: str) -> ToolCall | None:
        m = CALL.search(action)
        return None if m is None else ToolCall(tool=self.name, code=m.group(1).strip())

    def run(self, call: ToolCall, ctx: ToolContext) -> ExecResult:
        program = (
            "import sympy\n"
            f"_lhs, _, _rhs = {call.code!r}.partition('=')\n"
            "_eq = sympy.sympify(_lhs) - sympy.sympify(_rhs or '0')\n"
            "print(sorted(sympy.solve(_eq), key=sympy.default_sort_key))\n"
        )
        return ctx.session().run(program, timeout_s=ctx.timeout_s)

    def render(self, result: ExecResult) -> str:
        body = (
            result.stdout.strip()
            if result.ok
            else (result.stderr.strip().splitlines() or [result.reason])[-1]
        )
        return f"<result>{body}</result>\n"


if "examples.solve" not in thor.TOOLS:  # idempotent: the file may be imported more than once
    thor.TOOLS.register("examples.solve", config=SolveToolConfig, factory=SolveTool)


class SolveEnvConfig(TIREnvConfig):
    tool: ToolSpec = Field("examples.solve", validate_default=True)
    system_prompt: str | None = SYSTEM


if "examples/SolveTIR-v0" not in thor.ENVS:
    thor.ENVS.register(
        "examples/SolveTIR-v0",
        config=SolveEnvConfig,
        factory=TIREnv,
        description="Math with a sympy equation-solving tool",
    )


def main() -> list[str]:
    env = thor.make("examples/SolveTIR-v0").unwrapped
    try:
        env.reset(options={"problem": "Find the larger root of x^2 - 5x + 6 = 0.", "answer": "3"})
        obs, *_ = env.step("Let me solve it. <solve>x**2 - 5*x + 6 = 0</solve>")
        _, reward, terminated, _, _ = env.step("The larger root is \\boxed{3}.")
        print(obs.strip(), "reward", reward)
        return [obs, str(reward), str(terminated)]
    finally:
        env.close()


if __name__ == "__main__":
    main()
