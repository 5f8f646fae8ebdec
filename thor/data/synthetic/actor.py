"""A rule-based TIRGen actor that writes problems' worked solutions (synthetic, GSM8K, ...).

THOR's actor is the policy model itself. A model too small to finish a solution with a ``\\boxed{}``
answer (SmolLM2-135M, in ``thor demo``) gives TIRGen nothing to keep, so the demo can use this
actor instead: it writes each problem's reference chain of thought
(:func:`~thor.data.synthetic.render_solution`, prose only) in the *model's* tokens, continuing
from wherever the transcript is (code and output blocks inserted by the critic are skipped over).
Everything after it is TIRGen as usual: the critic inserts code, every block runs in the sandbox,
the same filters apply. It knows only the problems it is given, in prompts it rendered itself;
anything else gets an answer of ``\\boxed{?}`` (which the answer filter rejects).

Other datasets with worked solutions use it too: ``render`` writes a problem's solution (GSM8K:
:func:`thor.data.gsm8k.render_solution`), and ``hidden`` names markup that a critic consumes (GSM8K's
``<<48/2=24>>`` annotations, which the ``gsm8k`` critic removes): the actor finds its place in the
transcript ignoring it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from thor.data.synthetic import render_solution
from thor.types import Completion, Problem, SamplingParams

__all__ = ["ReferenceActor"]

# A python block inserted by a critic, with the output block that follows it.
_BLOCK = re.compile(r"```python\n.*?\n```\n?(?:\n?```output\n.*?\n```\n?)?", re.DOTALL)


class ReferenceActor:
    """A :class:`~thor.agents.backends.base.Policy` that writes known worked solutions.

    Args:
        problems: the problems it can solve (with their worked solutions).
        tokenizer: a Hugging Face tokenizer: prompts are rendered with its chat template and the
            solutions are emitted in its tokens, so ``step_tokens`` means what it means for the
            model.
        render: a problem's worked solution as text (default: the synthetic problems').
        hidden: markup of the solutions that a critic removes from the transcript; the actor's
            place in its solution is found ignoring it.

    Example:
        >>> from thor.data.synthetic import generate_problems
        >>> from thor.testing import tiny_tokenizer
        >>> p = generate_problems(1, seed=3, families=["arithmetic"], difficulties=[1])[0]
        >>> actor = ReferenceActor([p], tiny_tokenizer())
        >>> prompt = actor.apply_chat_template([{"role": "user", "content": p.problem}])
        >>> out = actor.generate([prompt], SamplingParams(max_tokens=10_000))[0]
        >>> out.finish_reason, out.text.endswith("}$.")
        ('eos', True)
    """

    name = "reference-actor"

    def __init__(
        self,
        problems: Iterable[Problem],
        tokenizer: Any,
        *,
        render: Callable[[Problem], str] = render_solution,
        hidden: str | re.Pattern[str] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.solutions = {p.problem: render(p) for p in problems}
        self.hidden = re.compile(hidden) if isinstance(hidden, str) else hidden
        eos = getattr(tokenizer, "eos_token_id", None)
        self.eos_token_ids = frozenset() if eos is None else frozenset({int(eos)})
        self._rendered: dict[str, str] = {}  # rendered chat prompt -> problem statement

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return str(
            self.tokenizer.decode(
                list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
        )

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        users = [m["content"] for m in messages if m["role"] == "user"]
        try:
            rendered = str(
                self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
            )
        except (ValueError, AttributeError):  # a tokenizer without a chat template
            rendered = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
        if users:
            self._rendered[rendered] = users[-1]
        return rendered

    def close(self) -> None:
        self._rendered.clear()

    def generate(
        self, prompts: Sequence[str | list[int]], params: SamplingParams
    ) -> list[Completion]:
        return [
            self._continue(p if isinstance(p, str) else self.decode(p), params.max_tokens)
            for p in prompts
        ]

    def _continue(self, prompt: str, max_tokens: int) -> Completion:
        problem, written = self._split(prompt)
        solution = self.solutions.get(problem, "I cannot solve this problem. $\\boxed{?}$.")
        remaining = solution[self._position(solution, _BLOCK.sub("", written))]
        rest = self.encode(remaining)
        k = min(max_tokens, len(rest))
        # never end a window inside a character that spans several tokens
        while 1 < k < len(rest) and not remaining.startswith(self.decode(rest[:k])):
            k -= 1
        ids = rest[:k]
        finish = "length" if len(rest) > k else "eos"
        return Completion(text=self.decode(ids), token_ids=ids, finish_reason=finish)

    def _position(self, solution: str, written: str) -> slice:
        """The rest of ``solution`` after ``written`` (hidden markup ignored on both sides)."""
        if self.hidden is None:
            return slice(_position(solution, written), None)
        visible: list[str] = []
        where: list[int] = []  # index in the solution of each visible character
        pos = 0
        for m in self.hidden.finditer(solution):
            visible.append(solution[pos : m.start()])
            where.extend(range(pos, m.start()))
            pos = m.end()
        visible.append(solution[pos:])
        where.extend(range(pos, len(solution)))
        k = _position("".join(visible), self.hidden.sub("", written))
        # right after the last visible character written: hidden markup that follows it is next
        return slice(where[k - 1] + 1 if k > 0 else 0, None)

    def _split(self, prompt: str) -> tuple[str, str]:
        """(problem statement, what the assistant has written so far) for a rendered prompt."""
        best = max((r for r in self._rendered if prompt.startswith(r)), key=len, default=None)
        if best is None:  # not rendered by this actor: it cannot tell where the answer starts
            return "", ""
        return self._rendered[best], prompt[len(best) :]


def _position(solution: str, written: str) -> int:
    """Where ``written`` (the solution so far, whitespace possibly changed) ends in ``solution``."""
    need = sum(not c.isspace() for c in written)
    pos = 0
    while need and pos < len(solution):
        if not solution[pos].isspace():
            need -= 1
        pos += 1
    trailing = len(written) - len(written.rstrip())
    while trailing and pos < len(solution) and solution[pos].isspace():
        pos += 1
        trailing -= 1
    return pos
