"""Per-token log-probabilities (and entropies) of a causal LM, aligned with the input ids.

``out[b, t]`` is ``log p(input_ids[b, t] | input_ids[b, :t])``: the score of token ``t`` given
what precedes it, so the output lines up position by position with ``input_ids`` and with the
loss mask of :mod:`thor.algos.batch`. Position 0 (no context) and padding positions are 0.

Memory and speed: the log-softmax is computed one sequence at a time, in float32 even for a bf16
model, and only the chosen token's value is kept (a gather), so no full-batch float32 copy of the
``(B, T, V)`` logits and no full-batch log-softmax is ever held without need: in a no-grad pass
(old or reference log-probs) the extra memory is one sequence's ``(T, V)``. ``chunk`` also runs
the model itself on ``chunk`` sequences at a time. On a CPU (2 threads, V = 49,152), a
per-sequence log-softmax + gather measured faster than a whole-batch ``log_softmax`` and than
``logit - logsumexp(logits)`` (which PyTorch computes as several full-size passes), both forward
and backward.

Example:
    >>> import torch
    >>> from thor.testing import tiny_model, tiny_tokenizer
    >>> tok, model = tiny_tokenizer(), tiny_model()
    >>> enc = tok(["print(1)", "x = 2 ** 10"], return_tensors="pt", padding=True)
    >>> lp = token_logprobs(model, enc["input_ids"], enc["attention_mask"])
    >>> lp.shape == enc["input_ids"].shape, bool((lp <= 0).all()), float(lp[0, 0].detach())
    (True, True, 0.0)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["token_logprobs", "token_logprobs_and_entropy"]


def _logits(model: Any, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    kwargs: dict[str, Any] = {}
    if bool((attention_mask[:, 0] == 0).any()):
        # Left padding: positions must count real tokens only. (Passed only then: with explicit
        # position_ids, transformers takes a slower attention-mask path, 2x on the tiny model.)
        kwargs["position_ids"] = (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kwargs)
    return out.logits if hasattr(out, "logits") else out[0]


def _rows(
    model: Any, input_ids: Tensor, attention_mask: Tensor, temperature: float, with_entropy: bool
) -> tuple[Tensor, Tensor | None]:
    spans = _packable(model, attention_mask)
    if spans is not None:
        return _packed_rows(model, input_ids, spans, temperature, with_entropy)
    logits = _logits(model, input_ids, attention_mask)[:, :-1, :]
    targets = input_ids[:, 1:]
    lps: list[Tensor] = []
    ents: list[Tensor] = []
    for row, tgt in zip(logits, targets, strict=True):  # one (T, V) log-softmax at a time
        row = row.float()
        if temperature != 1.0:
            row = row / temperature
        logp = torch.log_softmax(row, dim=-1)
        lps.append(logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1))
        if with_entropy:
            with torch.no_grad():
                ents.append(-(logp.exp() * logp).sum(dim=-1))
    valid = (attention_mask[:, 1:] > 0) & (attention_mask[:, :-1] > 0)
    lp = _align(torch.stack(lps), valid)
    if not with_entropy:
        return lp, None
    return lp, _align(torch.stack(ents), valid)


def _packable(model: Any, attention_mask: Tensor) -> list[tuple[int, int]] | None:
    """Each row's ``(start, length)`` of real tokens when the packed path applies, else None.

    It applies to a Llama-family model on the CPU (:class:`~thor.agents.backends._fastlm.FastLM`)
    without gradient checkpointing or attention dropout, and rows whose real tokens are one run.
    """
    from thor.agents.backends._fastlm import FastLM

    if attention_mask.device.type != "cpu" or not FastLM.supports(model):
        return None
    flag = "is_activation_checkpointing"  # transformers 5 name of is_gradient_checkpointing
    if getattr(model, flag if hasattr(model, flag) else "is_gradient_checkpointing", False):
        return None
    if model.training and float(getattr(model.config, "attention_dropout", 0.0) or 0.0) > 0:
        return None
    mask = attention_mask > 0
    lengths = mask.sum(dim=1)
    starts = mask.int().argmax(dim=1)
    cols = torch.arange(mask.shape[1], device=mask.device)
    run = (cols >= starts[:, None]) & (cols < (starts + lengths)[:, None])
    if not bool((run == mask).all()) or bool((lengths == 0).any()):
        return None
    return list(zip(starts.tolist(), lengths.tolist(), strict=True))


def _packed_rows(
    model: Any,
    input_ids: Tensor,
    spans: list[tuple[int, int]],
    temperature: float,
    with_entropy: bool,
) -> tuple[Tensor, Tensor | None]:
    """:func:`_rows` without padding: the rows' real tokens packed into one sequence.

    Each row is attended to on its own with positions from 0, which is what the padded call
    computes for its real tokens; the LM head runs only where a next token is scored.
    """
    from thor.agents.backends._fastlm import packed_forward

    seqs = [input_ids[b, a : a + n] for b, (a, n) in enumerate(spans)]
    keep = [torch.arange(n - 1, device=input_ids.device) for _, n in spans]
    logits = packed_forward(model, seqs, keep=keep)
    width = input_ids.shape[1]
    lps: list[Tensor] = []
    ents: list[Tensor] = []
    offset = 0
    for seq, (a, n) in zip(seqs, spans, strict=True):
        row = logits[offset : offset + n - 1].float()
        offset += n - 1
        if temperature != 1.0:
            row = row / temperature
        logp = torch.log_softmax(row, dim=-1)
        pad = (a + 1, width - a - n)
        lps.append(F.pad(logp.gather(-1, seq[1:].unsqueeze(-1)).squeeze(-1), pad))
        if with_entropy:
            with torch.no_grad():
                ents.append(F.pad(-(logp.exp() * logp).sum(dim=-1), pad))
    return torch.stack(lps), (torch.stack(ents) if with_entropy else None)


def _align(values: Tensor, valid: Tensor) -> Tensor:
    """Zero invalid positions and shift right by one: position t scores token t."""
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    values = torch.where(valid, values, zero)
    return torch.cat([torch.zeros_like(values[:, :1]), values], dim=1)


def _run(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    temperature: float,
    chunk: int | None,
    with_entropy: bool,
) -> tuple[Tensor, Tensor | None]:
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, tokens), got shape {tuple(input_ids.shape)}")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} != input_ids {tuple(input_ids.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be >= 1 or None, got {chunk}")
    if input_ids.shape[1] < 2:
        z = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)
        return z, (z.clone() if with_entropy else None)
    step = chunk or input_ids.shape[0]
    parts = [
        _rows(
            model, input_ids[i : i + step], attention_mask[i : i + step], temperature, with_entropy
        )
        for i in range(0, input_ids.shape[0], step)
    ]
    lp = torch.cat([p[0] for p in parts], dim=0)
    ent = torch.cat([p[1] for p in parts], dim=0) if with_entropy else None  # type: ignore[misc]
    return lp, ent


def token_logprobs(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    temperature: float = 1.0,
    chunk: int | None = None,
) -> Tensor:
    """Log-probability of each token given the tokens before it, ``(B, T)`` float32.

    Args:
        model: a causal LM called as ``model(input_ids=..., attention_mask=..., position_ids=...)``
            that returns logits ``(B, T, V)`` (any transformers ``*ForCausalLM``).
        input_ids: ``(B, T)`` token ids (right or left padded).
        attention_mask: ``(B, T)``, 1 on real tokens; ``None`` means no padding.
        temperature: logits are divided by it (use the sampling temperature so that ratios compare
            like with like).
        chunk: run the model on this many rows at a time (``None``: the whole batch at once).

    Returns:
        ``out[b, t] = log p(input_ids[b, t] | input_ids[b, :t])``; 0 at position 0 and wherever
        the token or its predecessor is padding. Differentiable unless called under ``no_grad``.

    Raises:
        ValueError: bad shapes, ``temperature <= 0`` or ``chunk < 1``.
    """
    return _run(model, input_ids, attention_mask, temperature, chunk, with_entropy=False)[0]


def token_logprobs_and_entropy(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    temperature: float = 1.0,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor]:
    """As :func:`token_logprobs`, plus the entropy of the predictive distribution at each position.

    ``entropy[b, t]`` is the entropy of the distribution that scored ``input_ids[b, t]`` (aligned
    like the log-probs; 0 where they are 0). The entropy is a metric: it carries no gradient.
    """
    lp, ent = _run(model, input_ids, attention_mask, temperature, chunk, with_entropy=True)
    assert ent is not None
    return lp, ent
