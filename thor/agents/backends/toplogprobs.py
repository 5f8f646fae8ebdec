"""The most likely alternatives at each generated token, for servers that report ``top_logprobs``.

thor's decode loop reports the sampled token's logprob only. When a client asks for the top ``k``
alternatives, :func:`top_logprobs` recomputes the distributions with one forward pass over the
prompt and the completion (teacher forcing, only the completion's positions kept) under the same
definition as the sampled logprobs: ``log_softmax(logits / T)`` before top-p / top-k truncation
(T = 0 counts as 1). It works for any policy holding a transformers causal LM as ``model``
(:class:`~thor.agents.backends.hf.HFPolicy`); :func:`scorer_of` returns ``None`` for others.

Example:
    >>> from thor.agents.backends.hf import HFPolicy
    >>> from thor.testing import tiny_model, tiny_tokenizer
    >>> policy = HFPolicy.from_model(tiny_model(), tiny_tokenizer())
    >>> score = scorer_of(policy)
    >>> rows = score([[5, 6, 7]], [[8, 9]], 3, 1.0)
    >>> [len(r) for r in rows[0]]
    [3, 3]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Scorer", "scorer_of", "top_logprobs"]

Scorer = Callable[
    [Sequence[Sequence[int]], Sequence[Sequence[int]], int, float],
    list[list[list[tuple[int, float]]]],
]
"""``(prompts, completions, k, temperature) -> [row][position] -> [(token, logprob)] * k``."""


def top_logprobs(
    model: Any,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    k: int,
    temperature: float,
) -> list[list[list[tuple[int, float]]]]:
    """For each row and each completion token, the ``k`` most likely tokens and their logprobs."""
    import torch

    device = next(model.parameters()).device
    temp = temperature if temperature > 0 else 1.0
    out: list[list[list[tuple[int, float]]]] = []
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        with torch.inference_mode():
            for prompt, completion in zip(prompts, completions, strict=True):
                if not completion or k == 0:
                    out.append([[] for _ in completion])
                    continue
                ids = torch.tensor([[*prompt, *completion[:-1]]], device=device)
                logits = model(input_ids=ids, logits_to_keep=len(completion)).logits[0].float()
                logp = torch.log_softmax(logits / temp, dim=-1)
                values, tokens = torch.topk(logp, min(k, logp.shape[-1]), dim=-1)
                out.append(
                    [
                        list(zip(t, v, strict=True))
                        for t, v in zip(tokens.tolist(), values.tolist(), strict=True)
                    ]
                )
    finally:
        if was_training:
            model.train()
    return out


def scorer_of(policy: Any) -> Scorer | None:
    """A :data:`Scorer` over ``policy.model`` when it is a torch module, else ``None``."""
    model = getattr(policy, "model", None)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    if not isinstance(model, torch.nn.Module):
        return None

    def score(
        prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], k: int, t: float
    ) -> list[list[list[tuple[int, float]]]]:
        current = getattr(policy, "model", None)
        if current is None:
            raise RuntimeError("the policy was closed")
        return top_logprobs(current, prompts, completions, k, t)

    return score
