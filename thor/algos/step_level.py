"""Step-level RL on failed code steps: branch points and step samples (THOR-SPEC section 2).

For every turn whose tool call failed, :func:`branch_points` builds the place to branch from: the
prompt, every earlier turn with its observation (the history), and this turn's reasoning cut just
before the failed ```` ```python ```` fence, minus its last ``suffix_tokens`` tokens. The policy then
samples continuations from there that regenerate the suffix and one code action (the sampling,
the interpreter state via ``TIREnv.fork()`` and the rewards are the trainer's); each continuation
becomes a :class:`StepSample`, whose prefix is masked from the loss.

Token ids are the record of truth: the kept prefix is the turn's own ``token_ids`` up to the cut,
never a re-tokenisation of its text. The cut is found by decoding prefixes of those ids. Where a
cut would split a character (a multi-byte character spread over several byte-level tokens), it
moves back to the previous clean boundary, so that the text and the ids always say the same
thing; ``dropped_tokens`` then exceeds ``suffix_tokens`` by the few tokens of that character.

Example:
    >>> from thor.testing import tiny_tokenizer
    >>> from thor.types import Episode, ExecResult, ToolCall, Turn
    >>> tok = tiny_tokenizer()
    >>> text = "Let me compute the sum.\\n```python\\nprint(1/0)\\n```"
    >>> turn = Turn(text=text, token_ids=tok.encode(text), call=ToolCall(code="print(1/0)"),
    ...             result=ExecResult(status="error", stderr="ZeroDivisionError"))
    >>> ep = Episode(id="e", problem="p", prompt="Q: ", prompt_token_ids=tok.encode("Q: "), turns=[turn])
    >>> [bp] = branch_points(ep, suffix_tokens=4, tokenizer=tok)
    >>> bp.prefix_text, bp.dropped_tokens, bp.failed_code
    ('Let me compute', 4, 'print(1/0)')
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from thor.agents.backtrack import tokens_before_offset
from thor.algos.batch import TrainSample
from thor.text.protocol import find_code_blocks
from thor.types import Episode, ExecResult, Turn, failed

__all__ = ["BranchPoint", "StepSample", "branch_points", "cut_before_fence"]

log = logging.getLogger(__name__)


class _Decoder(Protocol):
    def decode(self, token_ids: Any, **kwargs: Any) -> str: ...


class BranchPoint(BaseModel):
    """Where step-level RL branches: the context before a failed code step, minus a suffix.

    Attributes:
        episode_id: the episode it came from.
        turn_index: index in ``Episode.turns`` of the failed turn (for a discarded attempt, the
            index its retry took). The interpreter state to restore is the one after the turns
            before it (``TIREnv.fork()`` at that point).
        source: ``"turn"`` (a failed turn of the episode) or ``"discarded"`` (a failed attempt
            that self-correction threw away).
        prompt_text: prompt + history + kept prefix: what the policy continues from.
        prompt_token_ids: the same as token ids.
        history_tokens: how many of ``prompt_token_ids`` come before this turn (prompt + history).
        prefix_text: the kept start of this turn's reasoning.
        prefix_token_ids: the turn's own token ids up to the cut.
        dropped_text: the reasoning removed between the cut and the fence.
        dropped_tokens: how many of the turn's tokens were removed before the fence.
        failed_code: the code of the failed call.
        failed_result: its result.
    """

    model_config = ConfigDict(extra="forbid")

    episode_id: str
    turn_index: int = Field(ge=0)
    source: Literal["turn", "discarded"] = "turn"
    prompt_text: str
    prompt_token_ids: list[int]
    history_tokens: int = Field(ge=0)
    prefix_text: str
    prefix_token_ids: list[int]
    dropped_text: str
    dropped_tokens: int = Field(ge=0)
    failed_code: str
    failed_result: ExecResult | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class StepSample(BaseModel):
    """One continuation sampled from a :class:`BranchPoint`: regenerated reasoning + one action.

    Attributes:
        branch: where it was sampled from.
        completion_text: the continuation (new reasoning suffix and the code block).
        completion_ids: its token ids (the loss covers these only; the branch prefix is masked).
        logprobs: sampling log-probabilities of ``completion_ids``, if the backend gave them.
        code: the code of the action, ``None`` when the continuation wrote no code block (such a
            sample gets no reward and is dropped).
        result: the execution result of ``code``.
        reward: 1.0 when the code ran successfully (THOR's step reward), else 0.0; ``None`` until
            rewarded.

    Example:
        >>> from thor.types import ExecResult
        >>> bp = BranchPoint(episode_id="e", turn_index=0, prompt_text="Q: ", prompt_token_ids=[7, 8],
        ...                  history_tokens=2, prefix_text="", prefix_token_ids=[], dropped_text="",
        ...                  dropped_tokens=0, failed_code="print(x)")
        >>> s = StepSample(branch=bp, completion_text="...", completion_ids=[9, 10], code="print(1)",
        ...                result=ExecResult(status="ok", stdout="1\\n"), reward=1.0)
        >>> s.succeeded, s.to_train_sample(advantage=0.5).loss_mask
        (True, [1, 1])
    """

    model_config = ConfigDict(extra="forbid")

    branch: BranchPoint
    completion_text: str
    completion_ids: list[int]
    logprobs: list[float] | None = None
    code: str | None = None
    result: ExecResult | None = None
    reward: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def has_code(self) -> bool:
        """Whether the continuation wrote a code action."""
        return self.code is not None

    @property
    def succeeded(self) -> bool:
        """Whether the action's code ran successfully (``thor.types.failed`` is false)."""
        return self.has_code and not failed(self.result)

    def to_train_sample(
        self, advantage: float, *, weight: float = 1.0, group_id: str | None = None
    ) -> TrainSample:
        """A ``kind="step"`` :class:`TrainSample`: the branch context as prompt (masked), the
        continuation as response (every token trained on)."""
        return TrainSample(
            prompt_ids=list(self.branch.prompt_token_ids),
            response_ids=list(self.completion_ids),
            loss_mask=[1] * len(self.completion_ids),
            advantage=advantage,
            sampling_logprobs=self.logprobs,
            kind="step",
            weight=weight,
            group_id=group_id,
            metadata={
                "episode_id": self.branch.episode_id,
                "turn_index": self.branch.turn_index,
                "reward": self.reward,
            },
        )


def _decode(tokenizer: _Decoder, ids: Sequence[int]) -> str:
    return tokenizer.decode(
        list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
    )


def _clean(tokenizer: _Decoder, ids: Sequence[int], k: int, text: str, limit: int) -> bool:
    """Whether ``ids[:k]`` decodes to a prefix of ``text`` no longer than ``limit`` characters."""
    d = _decode(tokenizer, ids[:k])
    return len(d) <= limit and text.startswith(d)


def cut_before_fence(
    turn: Turn, *, suffix_tokens: int, tokenizer: _Decoder
) -> tuple[int, int, str] | None:
    """Where to cut a turn: ``(cut, fence, text)`` in tokens, or ``None`` without a code block.

    ``fence`` is the number of the turn's tokens wholly before its last ```` ```python ```` fence,
    ``cut = max(fence - suffix_tokens, 0)`` moved back to a clean character boundary if needed,
    and ``text`` the turn's decoded text.

    Raises:
        ValueError: the turn has no token ids, or ``suffix_tokens < 0``.
    """
    if suffix_tokens < 0:
        raise ValueError(f"suffix_tokens must be >= 0, got {suffix_tokens}")
    if turn.token_ids is None:
        raise ValueError("the turn has no token ids (a text-only policy): cannot cut it in tokens")
    ids = turn.token_ids
    text = _decode(tokenizer, ids)
    if text != turn.text:
        log.debug("turn text differs from its decoded token ids; using the decoded ids")
    blocks = find_code_blocks(text)
    if not blocks:
        return None
    offset = blocks[-1].start
    fence = tokens_before_offset(ids, text, offset, lambda k: _decode(tokenizer, k))
    cut = max(fence - suffix_tokens, 0)
    while cut > 0 and not _clean(tokenizer, ids, cut, text, offset):
        cut -= 1
    return cut, fence, text


def _history(episode: Episode, upto: int) -> tuple[str, list[int]]:
    if episode.prompt_token_ids is None:
        raise ValueError(f"episode {episode.id}: no prompt_token_ids")
    text = episode.prompt
    ids = list(episode.prompt_token_ids)
    for i, t in enumerate(episode.turns[:upto]):
        if t.token_ids is None or (t.observation and t.observation_token_ids is None):
            raise ValueError(f"episode {episode.id}: turn {i} lacks token ids")
        text += t.text + t.observation
        ids += t.token_ids + list(t.observation_token_ids or [])
    return text, ids


def _branch(
    episode: Episode, index: int, turn: Turn, source: str, suffix_tokens: int, tokenizer: _Decoder
) -> BranchPoint | None:
    found = cut_before_fence(turn, suffix_tokens=suffix_tokens, tokenizer=tokenizer)
    if found is None:
        log.warning(
            "episode %s turn %d: failed call without a python block in its text", episode.id, index
        )
        return None
    cut, fence, text = found
    assert turn.token_ids is not None
    prefix_ids = list(turn.token_ids[:cut])
    prefix_text = _decode(tokenizer, prefix_ids)
    history_text, history_ids = _history(episode, index)
    code = turn.call.code if turn.call is not None else find_code_blocks(text)[-1].code
    return BranchPoint(
        episode_id=episode.id,
        turn_index=index,
        source=source,
        prompt_text=history_text + prefix_text,
        prompt_token_ids=history_ids + prefix_ids,
        history_tokens=len(history_ids),
        prefix_text=prefix_text,
        prefix_token_ids=prefix_ids,
        dropped_text=_decode(tokenizer, turn.token_ids[cut:fence]),
        dropped_tokens=fence - cut,
        failed_code=code,
        failed_result=turn.result,
        metadata={"problem": episode.problem},
    )


def branch_points(
    episode: Episode,
    *,
    suffix_tokens: int,
    tokenizer: _Decoder,
    include_discarded: bool = False,
) -> list[BranchPoint]:
    """One :class:`BranchPoint` per failed tool call of ``episode``, in turn order.

    Args:
        episode: an episode with token ids (``prompt_token_ids``, each turn's ``token_ids`` and
            ``observation_token_ids``).
        suffix_tokens: how many tokens of reasoning before the failed fence to drop (``L_suf``:
            100-200 in THOR's release); a shorter reasoning is cut to its start, never into the
            previous observation.
        tokenizer: anything with ``decode(ids, skip_special_tokens=..., clean_up_tokenization_spaces=...)``
            (a transformers tokenizer).
        include_discarded: also branch at the failed attempts that self-correction discarded
            (``Episode.discarded``), placed after the turns before their retry.

    Returns:
        Branch points for failed calls only (a successful call gives none). A failed turn whose
        text holds no python block is skipped with a warning.

    Raises:
        ValueError: token ids are missing, or ``suffix_tokens < 0``.
    """
    out: list[BranchPoint] = []
    for i, turn in enumerate(episode.turns):
        if turn.failed_call:
            bp = _branch(episode, i, turn, "turn", suffix_tokens, tokenizer)
            if bp is not None:
                out.append(bp)
    if include_discarded:
        for d in episode.discarded:
            if d.turn.failed_call:
                bp = _branch(episode, d.turn_index, d.turn, "discarded", suffix_tokens, tokenizer)
                if bp is not None:
                    out.append(bp)
        out.sort(key=lambda b: (b.turn_index, b.source != "discarded"))
    return out
