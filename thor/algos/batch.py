"""Training samples and their collation into one padded batch.

A :class:`TrainSample` is the unit of training: prompt token ids, response token ids with a loss
mask (1 only on model-written tokens: tool outputs are 0), one advantage, optional old
log-probabilities, and its kind (``"trajectory"`` for a whole episode, ``"step"`` for a
step-level continuation), so that one token-mean batch can mix both and still log them apart.

:func:`collate` pads on the right into a :class:`Batch` whose tensors are aligned position by
position with :func:`thor.algos.logprobs.token_logprobs` (position ``t`` scores ``input_ids[t]``).

Example:
    >>> s1 = TrainSample(prompt_ids=[5, 6], response_ids=[7, 8, 9], loss_mask=[1, 0, 1], advantage=1.0)
    >>> s2 = TrainSample(prompt_ids=[5], response_ids=[7], loss_mask=[1], advantage=-1.0, kind="step")
    >>> b = collate([s1, s2], pad_token_id=0)
    >>> b.input_ids.tolist()
    [[5, 6, 7, 8, 9], [5, 7, 0, 0, 0]]
    >>> b.loss_mask.tolist()
    [[0, 0, 1, 0, 1], [0, 1, 0, 0, 0]]
    >>> b.kind_mask("step").tolist()
    [False, True]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from thor.types import Episode

__all__ = ["KINDS", "Batch", "SampleKind", "TrainSample", "collate"]

SampleKind = Literal["trajectory", "step"]
KINDS: tuple[SampleKind, ...] = ("trajectory", "step")
"""Sample kinds in the order of their integer codes in :attr:`Batch.kind`."""


class TrainSample(BaseModel):
    """One sequence to train on: a prompt, a response with its loss mask, and an advantage.

    Attributes:
        prompt_ids: the context (never trained on).
        response_ids: what follows the prompt (model text and tool outputs).
        loss_mask: one 0/1 per response token; 1 = model-written, trained on.
        advantage: the sample's advantage, broadcast to its tokens.
        old_logprobs: log-probabilities of the response tokens under the policy that is being
            updated, recomputed before the update (one per response token), if known.
        sampling_logprobs: the backend's log-probabilities at sampling time (diagnostics only).
        kind: ``"trajectory"`` or ``"step"``.
        weight: per-sample loss weight (to weigh step and trajectory samples apart).
        group_id: which group (prompt) the sample came from.
        metadata: anything else (episode id, reward...), JSON-serialisable.

    Example:
        >>> s = TrainSample(prompt_ids=[1, 2], response_ids=[3, 4], loss_mask=[1, 0], advantage=0.5)
        >>> s.num_tokens, s.kind
        (4, 'trajectory')
    """

    model_config = ConfigDict(extra="forbid")

    prompt_ids: list[int]
    response_ids: list[int]
    loss_mask: list[int]
    advantage: float = 0.0
    old_logprobs: list[float] | None = None
    sampling_logprobs: list[float] | None = None
    kind: SampleKind = "trajectory"
    weight: float = 1.0
    group_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _lengths(self) -> TrainSample:
        n = len(self.response_ids)
        if len(self.loss_mask) != n:
            raise ValueError(f"loss_mask has {len(self.loss_mask)} entries for {n} response tokens")
        if any(m not in (0, 1) for m in self.loss_mask):
            raise ValueError("loss_mask entries must be 0 or 1")
        for name in ("old_logprobs", "sampling_logprobs"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} response tokens")
        return self

    @property
    def num_tokens(self) -> int:
        """Prompt plus response length."""
        return len(self.prompt_ids) + len(self.response_ids)

    @classmethod
    def from_episode(
        cls,
        episode: Episode,
        advantage: float,
        *,
        group_id: str | None = None,
        weight: float = 1.0,
        eos_token_id: int | None = None,
    ) -> TrainSample:
        """A trajectory sample from an episode with token ids (``Episode.token_sequence()``).

        Sampling log-probabilities are kept (0.0 at tool-output positions) when every turn has them.
        With ``eos_token_id``, an episode whose last turn ended on the end token gets that token
        appended (trained on, sampling logprob 0.0 as a placeholder): backends leave it out of a
        turn's token ids, and a policy that never trains its stop token does not learn to stop.

        Raises:
            ValueError: the episode has no prompt token ids, or a turn lacks token ids.
        """
        if episode.prompt_token_ids is None:
            raise ValueError(f"episode {episode.id}: no prompt_token_ids")
        ids, mask = episode.token_sequence()
        logprobs: list[float] = []
        complete = True
        for t in episode.turns:
            if t.logprobs is None or t.token_ids is None or len(t.logprobs) != len(t.token_ids):
                complete = False
                break
            logprobs += list(t.logprobs) + [0.0] * len(t.observation_token_ids or [])
        sampling = logprobs if complete else None
        last = episode.turns[-1] if episode.turns else None
        if (
            eos_token_id is not None
            and last is not None
            and last.finish_reason == "eos"
            and not last.observation
        ):
            ids, mask = [*ids, eos_token_id], [*mask, 1]
            sampling = None if sampling is None else [*sampling, 0.0]
        return cls(
            prompt_ids=list(episode.prompt_token_ids),
            response_ids=ids,
            loss_mask=mask,
            advantage=advantage,
            sampling_logprobs=sampling,
            kind="trajectory",
            weight=weight,
            group_id=group_id,
            metadata={"episode_id": episode.id, "reward": episode.reward},
        )


@dataclass(frozen=True)
class Batch:
    """Padded tensors of a list of :class:`TrainSample` (right padding), all ``(B, T)`` or ``(B,)``.

    Attributes:
        input_ids: prompt + response ids, then ``pad_token_id``.
        attention_mask: 1 on real tokens.
        loss_mask: 1 only on model-written response tokens (prompt, tool output, padding 0).
        advantages: each sample's advantage at every position (use with ``loss_mask``).
        sample_advantages: ``(B,)`` the advantages.
        sample_weight: ``(B,)`` per-sample loss weights.
        kind: ``(B,)`` long, an index into :data:`KINDS` (0 trajectory, 1 step).
        old_logprobs: aligned with ``input_ids`` (0 outside the response), when every sample has them.
        sampling_logprobs: likewise, for the backend's sampling log-probabilities.
        prompt_lengths: ``(B,)`` tokens of prompt kept per sample.
        truncated_tokens: how many tokens ``max_length`` cut, over the whole batch.
        truncated_samples: how many samples lost tokens to ``max_length``.
        metadata: each sample's metadata.

    Example:
        >>> s = TrainSample(prompt_ids=[1], response_ids=[2, 3], loss_mask=[1, 1], advantage=-1.0)
        >>> b = collate([s], pad_token_id=0)
        >>> b.size, b.num_loss_tokens, b.advantages.tolist()
        (1, 2, [[-1.0, -1.0, -1.0]])
    """

    input_ids: Tensor
    attention_mask: Tensor
    loss_mask: Tensor
    advantages: Tensor
    sample_advantages: Tensor
    sample_weight: Tensor
    kind: Tensor
    old_logprobs: Tensor | None
    sampling_logprobs: Tensor | None
    prompt_lengths: Tensor
    truncated_tokens: int = 0
    truncated_samples: int = 0
    metadata: tuple[dict[str, Any], ...] = ()

    @property
    def size(self) -> int:
        """Number of samples."""
        return int(self.input_ids.shape[0])

    @property
    def num_loss_tokens(self) -> int:
        """Number of model-written tokens (the token-mean denominator)."""
        return int(self.loss_mask.sum())

    def kind_mask(self, kind: SampleKind) -> Tensor:
        """``(B,)`` bool: which samples are of ``kind``."""
        return self.kind == KINDS.index(kind)

    def to(self, device: torch.device | str) -> Batch:
        """A copy with every tensor on ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **moved)

    def select(self, rows: Tensor | Sequence[int]) -> Batch:
        """A batch of the given rows (indices or a ``(B,)`` bool mask), e.g. for micro-batches."""
        idx = torch.as_tensor(rows)
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        picked = {
            f.name: getattr(self, f.name)[idx]
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        meta = tuple(self.metadata[i] for i in idx.tolist()) if self.metadata else ()
        return replace(self, **picked, metadata=meta)


def _row(sample: TrainSample, max_length: int | None) -> tuple[list[int], list[int], int, int]:
    ids = sample.prompt_ids + sample.response_ids
    mask = [0] * len(sample.prompt_ids) + sample.loss_mask
    cut = 0
    if max_length is not None and len(ids) > max_length:
        cut = len(ids) - max_length
        ids, mask = ids[:max_length], mask[:max_length]
    return ids, mask, min(len(sample.prompt_ids), len(ids)), cut


def _aligned(values: list[float] | None, prompt_len: int, length: int, width: int) -> list[float]:
    row = [0.0] * prompt_len + list(values or [])
    row = row[:length]
    return row + [0.0] * (width - len(row))


def collate(
    samples: Sequence[TrainSample],
    *,
    pad_token_id: int,
    max_length: int | None = None,
    pad_to_multiple_of: int | None = None,
) -> Batch:
    """Pad samples on the right into one :class:`Batch`.

    Args:
        samples: the samples (trajectory and step samples may be mixed).
        pad_token_id: the id written into padding positions (never attended to, never trained on).
        max_length: cut each sequence (prompt + response) to this many tokens, from the right; the
            batch reports how many tokens and samples were cut.
        pad_to_multiple_of: round the padded length up to a multiple of this.

    Raises:
        ValueError: no samples, or ``max_length < 1``.
    """
    if not samples:
        raise ValueError("collate needs at least one sample")
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    rows = [_row(s, max_length) for s in samples]
    width = max(len(ids) for ids, *_ in rows)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    ids_t = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    loss = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, mask, _, _) in enumerate(rows):
        ids_t[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attn[i, : len(ids)] = 1
        loss[i, : len(ids)] = torch.tensor(mask, dtype=torch.long)
    adv = torch.tensor([s.advantage for s in samples], dtype=torch.float32)

    def logprob_tensor(name: str) -> Tensor | None:
        if any(getattr(s, name) is None for s in samples):
            return None
        return torch.tensor(
            [
                _aligned(getattr(s, name), r[2], len(r[0]), width)
                for s, r in zip(samples, rows, strict=True)
            ],
            dtype=torch.float32,
        )

    return Batch(
        input_ids=ids_t,
        attention_mask=attn,
        loss_mask=loss,
        advantages=adv[:, None].expand(-1, width).contiguous(),
        sample_advantages=adv,
        sample_weight=torch.tensor([s.weight for s in samples], dtype=torch.float32),
        kind=torch.tensor([KINDS.index(s.kind) for s in samples], dtype=torch.long),
        old_logprobs=logprob_tensor("old_logprobs"),
        sampling_logprobs=logprob_tensor("sampling_logprobs"),
        prompt_lengths=torch.tensor([r[2] for r in rows], dtype=torch.long),
        truncated_tokens=sum(r[3] for r in rows),
        truncated_samples=sum(r[3] > 0 for r in rows),
        metadata=tuple(dict(s.metadata) for s in samples),
    )
