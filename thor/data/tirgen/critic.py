r"""The critic of TIRGen: it sees one step of the actor's solution and inserts python into it.

THOR-SPEC section 1: the critic sees *only* the step (never the problem or its answer), finds the
parts that code can compute or check, writes each as a standalone python block that prints its
result, and embeds the blocks into the step, keeping every other word verbatim. It decides whether a
step is codable by inserting code or not.

Any object with ``name`` and ``rewrite(step) -> CriticResult`` is a critic (:class:`Critic`); one
that also has ``rewrite_batch(steps)`` is called once for many steps, and one that has
``clean(step) -> str`` consumes markup of the step (GSM8K's ``<<48/2=24>>`` calculator
annotations): the cleaned step is what its rewrite must keep and what stays when it inserts no
code (:func:`visible_text`). Three ship with thor, registered in :data:`thor.registries.CRITICS`:
:class:`LLMCritic` (``llm``: any policy backend, prompted),
:class:`~thor.data.tirgen.rule_critic.RuleCritic` (``rule``: no model; recognises computations in
the text) and :class:`~thor.data.tirgen.gsm8k_critic.GSM8KCritic` (``gsm8k``: GSM8K's
annotations become cells). Whatever a critic returns, :func:`check_rewrite` verifies that the
step's text survives around the code (up to whitespace); a rewrite that changed the reasoning is
rejected and counted.

Example:
    >>> r = parse_rewrite("We need 17 * 23.\n", "<rewrite>\nWe need 17 * 23.\n```python\nprint(17 * 23)\n```\n</rewrite>")
    >>> r.status, r.blocks
    ('code', ['print(17 * 23)'])
    >>> parse_rewrite("We need 17 * 23.\n", "We need 17 * 23, which is 391.").status
    'no_code'
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from thor.data.tirgen.text import Part, normalize_ws, same_text, split_fenced, text_of_parts
from thor.errors import ConfigError
from thor.types import SamplingParams

if TYPE_CHECKING:
    from thor.agents.backends.base import Policy

__all__ = [
    "CRITIC_EXAMPLES",
    "CRITIC_SYSTEM",
    "Critic",
    "CriticResult",
    "CriticStatus",
    "LLMCritic",
    "check_rewrite",
    "parse_rewrite",
    "rewrite_steps",
    "trim_to_step",
    "visible_text",
]

log = logging.getLogger(__name__)

CriticStatus = Literal["code", "no_code", "not_verbatim", "malformed", "error"]
"""``code``: a rewrite with python blocks and the step's text intact. ``no_code``: nothing inserted.
``not_verbatim``: code, but the text around it is not the step's. ``malformed``: nothing usable
(empty output, or fences that needed repair and still did not give the step back). ``error``: the
critic raised."""


class CriticResult(BaseModel):
    """What a critic made of one step.

    Attributes:
        status: see :data:`CriticStatus`; only ``code`` changes the step.
        parts: the rewrite, text and code parts in order (empty unless ``status == "code"``).
        notes: repairs made while reading the critic's output (``nested_fence``, ``prose_trimmed``).
        raw: what the critic wrote (for inspection; empty for rule critics).
        reason: why a rewrite was refused, for humans.
    """

    model_config = ConfigDict(extra="forbid")

    status: CriticStatus
    parts: list[Part] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    raw: str = ""
    reason: str = ""

    @property
    def blocks(self) -> list[str]:
        """The code of each python block, in order."""
        return [p.text for p in self.parts if p.kind == "code"]


@runtime_checkable
class Critic(Protocol):
    """Rewrites one step of a solution with python blocks, seeing nothing but that step."""

    name: str

    def rewrite(self, step: str) -> CriticResult:
        """The step with python blocks inserted, or a result whose status says why not."""
        ...


def visible_text(critic: Critic, step: str) -> str:
    """The step as it stays in the text: ``critic.clean(step)`` when the critic has it, else the step."""
    clean = getattr(critic, "clean", None)
    return str(clean(step)) if callable(clean) else step


def rewrite_steps(critic: Critic, steps: Sequence[str]) -> list[CriticResult]:
    """Ask ``critic`` about every step: one ``rewrite_batch`` call when it has one.

    A critic that raises is recorded (status ``error``, logged), never fatal: one bad step must not
    stop a long generation run. Every result passes :func:`check_rewrite` against the step's
    :func:`visible_text`.
    """
    if not steps:
        return []
    batch = getattr(critic, "rewrite_batch", None)
    results: list[CriticResult]
    if callable(batch):
        try:
            results = list(batch(list(steps)))
            if len(results) != len(steps):
                raise ValueError(f"{len(results)} results for {len(steps)} steps")
        except Exception as err:  # recorded per step, and counted in the funnel
            log.warning("critic %s failed on a batch of %d steps: %s", critic.name, len(steps), err)
            results = [CriticResult(status="error", reason=f"{type(err).__name__}: {err}")] * len(
                steps
            )
    else:
        results = []
        for step in steps:
            try:
                results.append(critic.rewrite(step))
            except Exception as err:  # recorded and counted, see above
                log.warning("critic %s failed on a step: %s", critic.name, err)
                results.append(CriticResult(status="error", reason=f"{type(err).__name__}: {err}"))
    return [
        check_rewrite(visible_text(critic, step), r) for step, r in zip(steps, results, strict=True)
    ]


def check_rewrite(step: str, result: CriticResult) -> CriticResult:
    """Verify a critic's result: a ``code`` rewrite must keep the step's text (up to whitespace).

    A rewrite whose text differs is turned into ``not_verbatim`` (the step then stays as the actor
    wrote it); one without code into ``no_code``.
    """
    if result.status != "code":
        return result.model_copy(update={"parts": []})
    if not any(p.kind == "code" and p.text.strip() for p in result.parts):
        return result.model_copy(update={"status": "no_code", "parts": []})
    if not same_text(text_of_parts(result.parts), step):
        return result.model_copy(
            update={
                "status": "not_verbatim",
                "parts": [],
                "reason": "the text around the code is not the step's text",
            }
        )
    return result


def _nonspace_index(parts: Sequence[Part]) -> tuple[str, list[tuple[int, int]]]:
    chars: list[str] = []
    where: list[tuple[int, int]] = []
    for i, p in enumerate(parts):
        if p.kind != "text":
            continue
        for j, ch in enumerate(p.text):
            if not ch.isspace():
                chars.append(ch)
                where.append((i, j))
    return "".join(chars), where


def _blank_between(parts: Sequence[Part], lo: tuple[int, int], hi: tuple[int, int]) -> bool:
    """Whether the text parts between positions ``lo`` and ``hi`` (exclusive) are all whitespace."""
    for i in range(lo[0], hi[0] + 1):
        p = parts[i]
        if p.kind != "text":
            continue
        start = lo[1] + 1 if i == lo[0] else 0
        end = hi[1] if i == hi[0] else len(p.text)
        if p.text[start:end].strip():
            return False
    return True


def trim_to_step(step: str, parts: Sequence[Part]) -> list[Part] | None:
    """Cut prose the critic wrote around the rewrite ("Here is the step: ...").

    Finds the step's text (up to whitespace) inside the rewrite's text; keeps what lies between its
    first and last character, and the code blocks that touch it (only whitespace between). Returns
    ``None`` when the step's text is not in the rewrite.
    """
    target = normalize_ws(step)
    joined, where = _nonspace_index(parts)
    k = joined.find(target) if target else -1
    if k < 0:
        return None
    first, last = where[k], where[k + len(target) - 1]
    out: list[Part] = []
    for i, p in enumerate(parts):
        if p.kind == "code":
            inside = first[0] < i < last[0]
            before = i < first[0] and _blank_between(parts, (i, len(p.text)), first)
            after = i > last[0] and _blank_between(parts, last, (i, -1))
            if inside or before or after:
                out.append(p)
            continue
        if i < first[0] or i > last[0]:
            continue
        text = p.text
        if i == last[0]:
            text = text[: last[1] + 1]
        if i == first[0]:
            text = text[first[1] :]
        out.append(Part(kind="text", text=text))
    return out


def _inside_tags(raw: str) -> str:
    start = raw.find("<rewrite>")
    body = raw[start + len("<rewrite>") :] if start >= 0 else raw
    end = body.find("</rewrite>")
    return body[:end] if end >= 0 else body


def parse_rewrite(step: str, raw: str) -> CriticResult:
    """Read an LLM critic's output for ``step`` into a :class:`CriticResult`, robustly.

    Handles prose around the rewrite (``<rewrite>`` tags, or the step's text found inside it),
    predicted outputs, malformed and nested fences (:func:`~thor.data.tirgen.text.split_fenced`).
    """
    if not isinstance(raw, str) or not raw.strip():
        return CriticResult(
            status="malformed", raw=raw if isinstance(raw, str) else "", reason="empty output"
        )
    parts, notes = split_fenced(_inside_tags(raw))
    if not any(p.kind == "code" for p in parts):
        return CriticResult(status="no_code", notes=notes, raw=raw)
    if same_text(text_of_parts(parts), step):
        return CriticResult(status="code", parts=parts, notes=notes, raw=raw)
    trimmed = trim_to_step(step, parts)
    if trimmed is not None and any(p.kind == "code" for p in trimmed):
        return CriticResult(status="code", parts=trimmed, notes=[*notes, "prose_trimmed"], raw=raw)
    repaired = any(n in notes for n in ("unclosed_fence", "nested_fence", "inline_fence"))
    return CriticResult(
        status="malformed" if repaired else "not_verbatim",
        notes=notes,
        raw=raw,
        reason="the text around the code is not the step's text",
    )


CRITIC_SYSTEM = """\
You turn one step of a math solution into a step that uses python. You see this step only.

1. Find what in the step can be computed or checked by a program: numeric calculations, algebra \
(solving, expanding, simplifying, factoring), sets and counting, logical or numeric checks.
2. For each, write a short, self-contained python block that computes it and prints the result. \
Use sympy, math, fractions or itertools where they help. Skip trivial arithmetic such as 2 + 3.
3. Put each block right after the sentence it belongs to, as
```python
...
```
4. Copy every other word of the step exactly: do not reword, shorten, correct, explain or \
continue it, and do not write what the code will print.
5. If nothing in the step is worth computing, give the step back unchanged.

Answer with the rewritten step only, between <rewrite> and </rewrite>."""

CRITIC_EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "The two roots satisfy x^2 - 7x + 10 = 0, so they are 2 and 5.\n"
        "Then the number of ways to choose 3 of the 12 books is C(12, 3) = 220.\n",
        "The two roots satisfy x^2 - 7x + 10 = 0, so they are 2 and 5.\n"
        "```python\nimport sympy as sp\nx = sp.symbols('x')\nprint(sp.solve(x**2 - 7*x + 10, x))\n```\n"
        "Then the number of ways to choose 3 of the 12 books is C(12, 3) = 220.\n"
        "```python\nimport math\nprint(math.comb(12, 3))\n```\n",
    ),
    (
        "So it is enough to look at the last digit of the number.\n",
        "So it is enough to look at the last digit of the number.\n",
    ),
)
"""Worked examples shown to the critic before the step (user: the step; assistant: its rewrite)."""


class LLMCritic:
    """A critic backed by any policy (a stronger instruction model in the paper; any model here).

    Args:
        policy: the model that rewrites steps; ``None`` until :meth:`bind` gives it one (a critic
            built by name from :data:`thor.registries.CRITICS` without a model shares the actor's).
        temperature: sampling temperature (0: greedy).
        max_tokens: cap on the rewrite's length.
        extra_tokens: the rewrite may be this many tokens longer than the longest step of the
            batch (room for the code blocks; a critic that rambles stops there).
        system_prompt: the instructions (default :data:`CRITIC_SYSTEM`).
        examples: worked (step, rewrite) pairs shown first (default :data:`CRITIC_EXAMPLES`).

    Example:
        >>> from thor.agents.backends.hf import HFPolicy  # doctest: +SKIP
        >>> critic = LLMCritic(HFPolicy(model="embedded"))  # doctest: +SKIP
        >>> critic.rewrite("Then 37 * 41 = 1517.\\n").status  # doctest: +SKIP
        'code'
    """

    def __init__(
        self,
        policy: Policy | None,
        *,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        extra_tokens: int = 192,
        system_prompt: str = CRITIC_SYSTEM,
        examples: Sequence[tuple[str, str]] = CRITIC_EXAMPLES,
        seed: int = 0,
    ) -> None:
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.extra_tokens = extra_tokens
        self.system_prompt = system_prompt
        self.examples = list(examples)
        self.seed = seed
        self.policy: Policy | None = None
        self.name = "llm"
        if policy is not None:
            self.bind(policy)

    def bind(self, policy: Policy) -> None:
        """Give the critic its model (once): how a critic built by name shares the actor's policy."""
        if self.policy is not None and self.policy is not policy:
            raise ConfigError(f"critic {self.name} already has a model")
        self.policy = policy
        self.name = f"llm:{getattr(policy, 'name', type(policy).__name__)}"

    def _policy(self) -> Policy:
        if self.policy is None:
            raise ConfigError("the LLM critic has no model: give it one (bind) or set its 'model'")
        return self.policy

    def prompt(self, step: str) -> str:
        """The chat prompt for ``step``, with the assistant's answer opened by ``<rewrite>``."""
        messages = [{"role": "system", "content": self.system_prompt}]
        for ex_step, ex_rewrite in self.examples:
            messages.append({"role": "user", "content": f"<step>\n{ex_step}</step>"})
            messages.append({"role": "assistant", "content": f"<rewrite>\n{ex_rewrite}</rewrite>"})
        messages.append({"role": "user", "content": f"<step>\n{step}</step>"})
        return self._policy().apply_chat_template(messages) + "<rewrite>\n"

    def rewrite(self, step: str) -> CriticResult:
        return self.rewrite_batch([step])[0]

    def rewrite_batch(self, steps: Sequence[str]) -> list[CriticResult]:
        """Rewrite many steps with one ``generate`` call."""
        if not steps:
            return []
        policy = self._policy()
        longest = max(len(policy.encode(s)) for s in steps)
        params = SamplingParams(
            max_tokens=max(16, min(self.max_tokens, longest + self.extra_tokens)),
            temperature=self.temperature,
            seed=self.seed,
            stop=["</rewrite>"],
        )
        completions = policy.generate([self.prompt(s) for s in steps], params)
        return [
            parse_rewrite(s, "<rewrite>\n" + c.text)
            for s, c in zip(steps, completions, strict=True)
        ]
