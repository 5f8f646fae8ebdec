"""Test doubles for TIRGen: a fast scripted actor (character tokens) and scripted critics.

:class:`SolutionActor` writes each synthetic problem's worked solution
(:func:`thor.data.synthetic.render_solution`, prose only), continuing from wherever the transcript
is (code and output blocks inserted by a critic are skipped over). Its final answer is right only
when the transcript already holds an executed ``output`` block: plain chain of thought (the
difficulty filter's ``cot`` agent) gets it wrong, tool-integrated text gets it right.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from thor.data.synthetic import render_solution
from thor.data.synthetic.actor import _position
from thor.data.tirgen.critic import CriticResult
from thor.data.tirgen.text import Part
from thor.types import Completion, Problem, SamplingParams

_BLOCK = re.compile(r"```python\n.*?\n```(?:\n```output\n.*?\n```\n)?", re.DOTALL)
_BOX = re.compile(r"\\boxed\{([^{}]*)\}")


class SolutionActor:
    """A policy that writes known solutions, one character per token (see the module docstring).

    Args:
        problems: the problems it knows (by statement).
        delay_s: sleep per ``generate`` call (to make a run slow enough to kill mid-way).
        never_stop: write filler forever instead of a solution.
        wrong_without_tools: give a wrong answer unless the transcript has an output block.
        texts: solutions by problem statement (default: the synthetic worked solutions).
        easy: problem statements answered right even without tools (the CoT agent solves them).
    """

    name = "solution-actor"
    eos_token_ids = frozenset({0})

    def __init__(
        self,
        problems: Sequence[Problem],
        *,
        delay_s: float = 0.0,
        never_stop: bool = False,
        wrong_without_tools: bool = True,
        texts: dict[str, str] | None = None,
        easy: Sequence[str] = (),
    ) -> None:
        self.solutions = texts or {p.problem: render_solution(p) for p in problems}
        self.delay_s = delay_s
        self.never_stop = never_stop
        self.wrong_without_tools = wrong_without_tools
        self.easy = set(easy)  # problem statements it answers right even without tools
        self.calls = 0
        self.prompts_seen = 0
        self.batch_sizes: list[int] = []

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        body = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return body + "<assistant>"

    def close(self) -> None:
        pass

    def generate(
        self, prompts: Sequence[str | list[int]], params: SamplingParams
    ) -> list[Completion]:
        self.calls += 1
        self.prompts_seen += len(prompts)
        self.batch_sizes.append(len(prompts))
        if self.delay_s:
            time.sleep(self.delay_s)
        out = []
        for p in prompts:
            text = p if isinstance(p, str) else self.decode(p)
            out.append(self._continue(text, params.max_tokens))
        return out

    def _continue(self, prompt: str, max_tokens: int) -> Completion:
        head, _, written = prompt.rpartition("<assistant>")
        problem = head.rpartition("<user>")[2].rpartition("</user>")[0]
        if self.never_stop:
            text = ("la " * max_tokens)[: max_tokens - 1] + "\n"
            return Completion(text=text, token_ids=self.encode(text), finish_reason="length")
        solution = self.solutions.get(problem, "I do not know. \\boxed{0}")
        if self.wrong_without_tools and "```output" not in written and problem not in self.easy:
            solution = _BOX.sub(lambda m: "\\boxed{" + m.group(1) + "1}", solution)
        pos = _position(solution, _BLOCK.sub("", written))
        text = solution[pos : pos + max_tokens]
        reason = "length" if pos + max_tokens < len(solution) else "eos"
        return Completion(text=text, token_ids=self.encode(text), finish_reason=reason)


class ScriptedCriticPolicy:
    """A policy for :class:`~thor.data.tirgen.critic.LLMCritic` whose output is a function of the step."""

    name = "scripted-critic"
    eos_token_ids = frozenset({0})

    def __init__(self, respond) -> None:  # respond(step: str) -> str
        self.respond = respond
        self.calls = 0

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return (
            "<step>"
            + messages[-1]["content"].removeprefix("<step>\n").removesuffix("</step>")
            + "</step>"
        )

    def close(self) -> None:
        pass

    def generate(
        self, prompts: Sequence[str | list[int]], params: SamplingParams
    ) -> list[Completion]:
        self.calls += 1
        out = []
        for p in prompts:
            text = p if isinstance(p, str) else self.decode(p)
            step = text.rpartition("<step>")[2].rpartition("</step>")[0]
            reply = self.respond(step)
            out.append(Completion(text=reply, token_ids=self.encode(reply), finish_reason="eos"))
        return out


class FixedCritic:
    """A critic that returns a fixed result for every step (for bad-input tests)."""

    def __init__(self, make, name: str = "fixed") -> None:  # make(step) -> CriticResult
        self.make = make
        self.name = name

    def rewrite(self, step: str) -> CriticResult:
        return self.make(step)


def code_after_first_line(code: str):
    """A critic factory: insert ``code`` after the first line of every step."""

    def make(step: str) -> CriticResult:
        nl = step.find("\n")
        cut = len(step) if nl < 0 else nl + 1
        parts = [Part(kind="text", text=step[:cut]), Part(kind="code", text=code)]
        if step[cut:]:
            parts.append(Part(kind="text", text=step[cut:]))
        return CriticResult(status="code", parts=parts)

    return make
