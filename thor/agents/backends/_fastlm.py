"""A lean forward pass for Llama-family causal LMs (SmolLM2, Llama, Qwen2), over the HF model's own modules.

Why: on a CPU, a transformers forward spends much of a decode step outside the matrix products:
its KV cache grows by ``torch.cat`` (the whole cache copied every token), grouped-query attention
repeats keys and values to every query head before attending, and masks are rebuilt per call.
:class:`FastLM` runs the same computation with:

- the HF model's modules and parameters themselves (embedding, rotary embedding, norms,
  activation, linear layers): no copy of a weight, so a trained parameter is used as soon as it
  changes, and the float32 path computes what transformers computes (up to the order of float
  operations in attention);
- a KV cache that stays a transformers ``DynamicCache`` (the decode loop's prefix cache, row
  selection and trimming keep working) but grows in place into spare capacity;
- grouped-query attention without repeating keys and values (a decode step attends with the
  query heads of one key head as a group);
- optionally int8 linear layers (:mod:`thor.agents.backends._quant`), for a rollout copy.

:func:`packed_forward` runs the same layers on several sequences packed into one row (no padding;
attention per sequence), with autograd, for training.

Example:
    >>> from thor.testing import tiny_model
    >>> FastLM.supports(tiny_model())
    True
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["FastLM", "packed_forward"]

_SUPPORTED = frozenset({"llama", "qwen2"})
_GROW = 256
"""Spare KV cache columns allocated at a time (per row, layer, head)."""

Linear = Callable[[Any, Tensor], Tensor]


def _plain_linear(module: Any, x: Tensor) -> Tensor:
    return module(x)


def _inner(model: Any) -> Any:
    return getattr(model, "model", None)


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    return (x * cos) + (_rotate_half(x) * sin)


class FastLM:
    """Call it like a transformers causal LM for the decode loop: ``(input_ids, attention_mask,
    position_ids, cache, logits_to_keep)`` -> an object with ``.logits``.

    Args:
        model: a ``*ForCausalLM`` whose :meth:`supports` is true.
        linear: how to apply a linear module (default: the module itself, float32 exact).
    """

    def __init__(self, model: Any, linear: Linear | None = None) -> None:
        if not self.supports(model):
            raise ValueError(f"FastLM does not support {type(model).__name__}")
        self.model = model
        self.linear: Linear = linear or _plain_linear
        cfg = model.config
        self.heads = int(cfg.num_attention_heads)
        self.kv_heads = int(getattr(cfg, "num_key_value_heads", None) or self.heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads)

    @staticmethod
    def supports(model: Any) -> bool:
        """A plain (not peft-wrapped) Llama-family model with full attention in every layer."""
        cfg = getattr(model, "config", None)
        inner = _inner(model)
        if cfg is None or inner is None or getattr(cfg, "model_type", None) not in _SUPPORTED:
            return False
        if getattr(cfg, "use_sliding_window", False):
            return False
        needed = ("embed_tokens", "layers", "norm", "rotary_emb")
        return all(hasattr(inner, n) for n in needed) and hasattr(model, "lm_head")

    def __call__(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        position_ids: Tensor,
        cache: Any,
        logits_to_keep: int = 0,
        **_: Any,
    ) -> SimpleNamespace:
        inner = self.model.model
        s = input_ids.shape[1]
        h = inner.embed_tokens(input_ids)
        cos, sin = inner.rotary_emb(h, position_ids)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        past = _cached_len(cache)
        mask = _attention_mask(attention_mask.bool(), past, s)
        for i, layer in enumerate(inner.layers):
            h = h + self._attention(layer, layer.input_layernorm(h), cos, sin, mask, cache, i)
            h = h + _mlp(self.linear, layer.mlp, layer.post_attention_layernorm(h))
        h = inner.norm(h)
        if logits_to_keep:
            h = h[:, -logits_to_keep:]
        return SimpleNamespace(logits=self.linear(self.model.lm_head, h), cache=cache)

    def _attention(
        self, layer: Any, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor, cache: Any, i: int
    ) -> Tensor:
        att, lin = layer.self_attn, self.linear
        b, s, _ = x.shape
        d, g = self.head_dim, self.heads // self.kv_heads
        q, k, v = _qkv(lin, att, x, (self.heads, self.kv_heads, d), cos, sin)
        keys, values = _append(cache, i, k, v)
        if s == 1:  # the query heads of one key head attend as one group: no repeated keys
            o = F.scaled_dot_product_attention(
                q.reshape(b, self.kv_heads, g, d), keys, values, attn_mask=mask
            )
            o = o.reshape(b, 1, self.heads * d)
        else:
            o = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, enable_gqa=g > 1)
            o = o.transpose(1, 2).reshape(b, s, self.heads * d)
        return lin(att.o_proj, o)


def _mlp(lin: Linear, mlp: Any, x: Tensor) -> Tensor:
    return lin(mlp.down_proj, mlp.act_fn(lin(mlp.gate_proj, x)) * lin(mlp.up_proj, x))


def _qkv(
    lin: Linear, att: Any, x: Tensor, shape: tuple[int, int, int], cos: Tensor, sin: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Queries, keys, values ``[B, heads, S, d]`` with rotary positions applied to q and k."""
    b, s, _ = x.shape
    heads, kv_heads, d = shape
    q = lin(att.q_proj, x).view(b, s, heads, d).transpose(1, 2)
    k = lin(att.k_proj, x).view(b, s, kv_heads, d).transpose(1, 2)
    v = lin(att.v_proj, x).view(b, s, kv_heads, d).transpose(1, 2)
    return _rope(q, cos, sin), _rope(k, cos, sin), v


def _cached_len(cache: Any) -> int:
    layers = getattr(cache, "layers", None)
    if not layers or not getattr(layers[0], "is_initialized", False):
        return 0
    return int(layers[0].keys.shape[-2])


def _attention_mask(keep: Tensor, past: int, s: int) -> Tensor:
    """Boolean ``[B, 1, S, past + S]`` mask: real keys, causal, and each query sees itself.

    A padding query would otherwise see nothing (a NaN row); it attends to itself instead, and no
    real token ever attends to it.
    """
    b, width = keep.shape
    if s == 1:
        return keep.view(b, 1, 1, width)
    cols = torch.arange(width, device=keep.device)
    rows = past + torch.arange(s, device=keep.device)
    causal = cols.unsqueeze(0) <= rows.unsqueeze(1)
    mask = keep.view(b, 1, 1, width) & causal.view(1, 1, s, width)
    return mask | (cols.unsqueeze(0) == rows.unsqueeze(1)).view(1, 1, s, width)


def _append(cache: Any, i: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Add one layer's new keys and values; grow into spare capacity instead of copying the cache.

    The layer's ``keys`` / ``values`` stay exactly the valid columns (views of a larger buffer), so
    anything that reads, selects or trims a ``DynamicCache`` sees a plain one. When someone has
    replaced them (row selection, trimming), the buffer is rebuilt from what is there.
    """
    layers = cache.layers
    if i >= len(layers) or not layers[i].is_initialized or layers[i].keys.dim() != 4:
        return cache.update(k, v, i)
    layer = layers[i]
    keys, values = layer.keys, layer.values
    n, s = keys.shape[-2], k.shape[-2]
    buf = getattr(layer, "_thor_buf", None)
    if buf is None or buf[2] is not keys or buf[0].shape[-2] < n + s:
        shape = (*keys.shape[:2], n + s + _GROW, keys.shape[-1])
        bk, bv = keys.new_empty(shape), values.new_empty(shape)
        bk[:, :, :n] = keys
        bv[:, :, :n] = values
    else:
        bk, bv = buf[0], buf[1]
    bk[:, :, n : n + s] = k
    bv[:, :, n : n + s] = v
    layer.keys, layer.values = bk[:, :, : n + s], bv[:, :, : n + s]
    layer._thor_buf = (bk, bv, layer.keys)
    return layer.keys, layer.values


def packed_forward(
    model: Any, ids: Sequence[Tensor], *, keep: Sequence[Tensor] | None = None
) -> Tensor:
    """Logits of several sequences packed into one row, attention within each sequence only.

    Args:
        model: a model :meth:`FastLM.supports`.
        ids: 1-D token id tensors, one per sequence (no padding).
        keep: per sequence, the positions whose logits are wanted (default: all).

    Returns:
        ``(sum of kept positions, V)`` logits, sequences in order. Differentiable.
    """
    inner = model.model
    lengths = [int(x.shape[0]) for x in ids]
    flat = torch.cat(list(ids)).unsqueeze(0)
    pos = torch.cat([torch.arange(n, device=flat.device) for n in lengths]).unsqueeze(0)
    h = inner.embed_tokens(flat)
    cos, sin = inner.rotary_emb(h, pos)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    cfg = model.config
    heads = int(cfg.num_attention_heads)
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
    shape = (heads, kv_heads, int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads))
    bounds = [0, *itertools.accumulate(lengths)]
    for layer in inner.layers:
        att = layer.self_attn
        q, k, v = _qkv(_plain_linear, att, layer.input_layernorm(h), shape, cos, sin)
        parts = [  # attention within each sequence: no mask, no cross-sequence work
            F.scaled_dot_product_attention(
                q[:, :, a:e],
                k[:, :, a:e],
                v[:, :, a:e],
                is_causal=True,
                enable_gqa=heads > kv_heads,
            )
            for a, e in itertools.pairwise(bounds)
        ]
        o = torch.cat(parts, dim=2).transpose(1, 2).reshape(1, flat.shape[1], heads * shape[2])
        h = h + att.o_proj(o)
        h = h + _mlp(_plain_linear, layer.mlp, layer.post_attention_layernorm(h))
    h = inner.norm(h)[0]
    if keep is not None:
        h = torch.cat(
            [h[a:e][sel] for a, e, sel in zip(bounds[:-1], bounds[1:], keep, strict=True)]
        )
    return model.lm_head(h)
