"""The typed objects that travel between thor's parts.

Everything here is plain, serialisable data (pydantic models): episodes cross process and machine
boundaries (rollout workers, Ray actors, JSONL files) and must round-trip through JSON unchanged.

Example:
    >>> from thor.types import ExecResult, failed
    >>> failed(ExecResult(status="ok", stdout="42\\n"))
    False
    >>> failed(ExecResult(status="ok", stdout=""))  # printing nothing is a failed call in THOR
    True
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Completion",
    "DiscardedAttempt",
    "Episode",
    "ExecResult",
    "ExecStatus",
    "FinishReason",
    "Problem",
    "SamplingParams",
    "ToolCall",
    "Turn",
    "failed",
]

ExecStatus = Literal["ok", "error", "timeout", "killed", "sandbox_error"]
"""How a cell ended.

``ok``: ran to the end. ``error``: raised (or ``sys.exit`` with a non-zero code). ``timeout``: a
wall-clock or CPU limit stopped it. ``killed``: the interpreter died (a signal, a limit, ``os._exit``).
``sandbox_error``: the sandbox itself failed, not the code (only recorded where a caller asked to
record such failures instead of raising :class:`~thor.errors.SandboxError`).
"""


FinishReason = Literal["eos", "stop", "code_close", "length"]
"""Why a policy stopped: its end token (``eos``), a stop string, a closed code block, or max tokens."""


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExecResult(_Data):
    """The result of running one code cell."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: ExecStatus
    stdout: str = ""
    stderr: str = ""
    reason: str = Field(
        "", description="Why it ended so, for humans: 'ZeroDivisionError: ...', 'killed by SIGSEGV'"
    )
    duration_s: float = 0.0
    state_lost: bool = Field(
        False, description="The interpreter state (variables, imports) is gone"
    )
    truncated: bool = Field(
        False, description="Output went past the sandbox's output limit and was cut"
    )

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def failed(result: ExecResult | None) -> bool:
    """THOR's notion of a failed tool call, the one predicate every part of thor uses.

    A call fails when its code raised or exited non-zero, timed out, was killed, when the sandbox
    itself failed, or when it printed nothing (THOR-SPEC section 0). ``None`` (no result) fails.
    """
    if result is None or result.status != "ok":
        return True
    return not result.stdout.strip()


class ToolCall(_Data):
    """A tool call found in the model's text: which tool, and its input (python code by default)."""

    tool: str = "python"
    code: str


class Turn(_Data):
    """One step of an episode: the model's text, and the tool call it ended with, if any."""

    text: str = Field(
        description="Model-written text of this step (decoded from token_ids when known)"
    )
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    call: ToolCall | None = None
    result: ExecResult | None = None
    observation: str = Field("", description="Text the environment appended after this step")
    observation_token_ids: list[int] | None = None
    finish_reason: FinishReason | None = Field(
        None, description="Why the policy stopped this turn (eos: the end token, not in token_ids)"
    )

    @property
    def failed_call(self) -> bool:
        """True when this turn made a tool call and the call failed."""
        return self.call is not None and failed(self.result)


class DiscardedAttempt(_Data):
    """A failed attempt that self-correction threw away, kept for analysis and step-level RL."""

    turn_index: int = Field(description="Index in Episode.turns that the retry took")
    turn: Turn = Field(description="The discarded turn: text, code and its failed result")
    kept_text: str = Field("", description="Prefix of turn.text kept as the start of the retry")
    kept_tokens: int | None = None
    retry: int = Field(1, description="1-based count of consecutive retries at this point")


class Episode(_Data):
    """One problem worked by one policy: the prompt, the turns, the answer and its reward terms."""

    id: str
    problem: str
    answer: str | None = Field(None, description="Gold answer")
    prompt: str = Field("", description="Rendered prompt text the policy saw")
    prompt_token_ids: list[int] | None = None
    turns: list[Turn] = Field(default_factory=list)
    discarded: list[DiscardedAttempt] = Field(default_factory=list)
    final_answer: str | None = None
    rewards: dict[str, float] = Field(default_factory=dict, description="Reward terms by name")
    reward: float | None = None
    terminated: bool = False
    truncated: bool = False
    stop_reason: str = Field(
        "", description="answer | max_rounds | max_tokens | no_progress | error: ..."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)

    def response_text(self) -> str:
        """The whole response: model text and tool outputs, in order."""
        return "".join(t.text + t.observation for t in self.turns)

    def model_text(self) -> str:
        """What the model wrote: its turns' text without the tools' outputs (code may print
        fences or a ``\\boxed{}`` of its own; what judges the model reads this)."""
        return "".join(t.text for t in self.turns)

    @property
    def num_calls(self) -> int:
        return sum(t.call is not None for t in self.turns)

    @property
    def num_failed_calls(self) -> int:
        return sum(t.failed_call for t in self.turns)

    def token_sequence(self) -> tuple[list[int], list[int]]:
        """Response token ids and the loss mask (1 = model-written, 0 = tool output).

        Raises:
            ValueError: when a turn lacks token ids (an episode from a text-only policy).
        """
        ids: list[int] = []
        mask: list[int] = []
        for i, t in enumerate(self.turns):
            if t.token_ids is None:
                raise ValueError(f"episode {self.id}: turn {i} has no token ids")
            ids += t.token_ids
            mask += [1] * len(t.token_ids)
            if t.observation:
                if t.observation_token_ids is None:
                    raise ValueError(
                        f"episode {self.id}: turn {i} has an observation without token ids"
                    )
                ids += t.observation_token_ids
                mask += [0] * len(t.observation_token_ids)
        return ids, mask


class Problem(_Data):
    """A problem from a dataset: the statement, the gold answer and where it came from."""

    id: str
    problem: str
    answer: str | None = None
    source: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class SamplingParams(_Data):
    """How a policy samples one completion per prompt (batch-first: repeat a prompt for a group)."""

    max_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.6, ge=0.0, description="0 means greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, description="0 disables top-k")
    seed: int | None = None
    stop: list[str] = Field(
        default_factory=list, description="Stop when the text ends with one of these"
    )
    stop_at_code_close: bool = Field(
        False,
        description="Stop right after the closing fence of a ```python block (not the opening one)",
    )


class Completion(_Data):
    """What a policy generated for one prompt. ``token_ids`` are the record of truth."""

    text: str
    token_ids: list[int]
    logprobs: list[float] | None = Field(
        None, description="Sampling log-probabilities, one per token"
    )
    finish_reason: FinishReason = "eos"
