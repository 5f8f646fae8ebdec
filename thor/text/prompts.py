"""THOR's prompts (THOR-SPEC sections 0 and 1), written in thor's own words where the spec gives none.

A prompt style gives the system message; the user message is the problem. Agents render the two
with the policy's chat template.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["PROMPTS", "PromptStyle", "messages_for"]

PromptStyle = Literal["tir", "tir_reasoning", "cot"]

COT_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

TIR_SYSTEM = (
    "Please integrate natural language reasoning with programs to solve the problem, and put your "
    "final answer within \\boxed{}. When a calculation helps, write a python block that prints its "
    "result:\n```python\nprint(12 * 34)\n```\nIt is run, and its output is shown to you in an "
    "```output block. Then continue your reasoning."
)

TIR_REASONING_SYSTEM = (
    "Solve the problem, thinking step by step. While you think, you may run python: write a python "
    "block that prints its result (```python ... ```); it is run and its output is shown in an "
    "```output block. Put your final answer within \\boxed{}."
)

PROMPTS: dict[str, str] = {
    "cot": COT_SYSTEM,
    "tir": TIR_SYSTEM,
    "tir_reasoning": TIR_REASONING_SYSTEM,
}


def messages_for(
    problem: str, style: str = "tir", system: str | None = None
) -> list[dict[str, str]]:
    """Chat messages for a problem: a system message (the style's, or ``system``) and the problem.

    Example:
        >>> [m["role"] for m in messages_for("1+1?", "cot")]
        ['system', 'user']
    """
    return [
        {"role": "system", "content": system or PROMPTS[style]},
        {"role": "user", "content": problem},
    ]
