from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thor.testing import tiny as tiny_mod
from thor.testing import tiny_model, tiny_tokenizer

# Any text that UTF-8 can encode (lone surrogates cannot be encoded, so no tokenizer can keep them).
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)


def test_tokenizer_is_deterministic_across_training_runs() -> None:
    first = tiny_mod._tokenizer_json()
    tiny_mod._tokenizer_json.cache_clear()
    try:
        second = tiny_mod._tokenizer_json()
    finally:
        tiny_mod._tokenizer_json.cache_clear()
    assert json.loads(first)["model"]["vocab"] == json.loads(second)["model"]["vocab"]
    assert json.loads(first)["model"]["merges"] == json.loads(second)["model"]["merges"]
    assert tiny_tokenizer().get_vocab() == tiny_tokenizer().get_vocab()


def test_tokenizer_shape_and_special_tokens() -> None:
    tok = tiny_tokenizer()
    assert len(tok) == tiny_mod.TINY_VOCAB_SIZE
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    assert tok.eos_token_id != tok.pad_token_id
    # the fences are learned as whole tokens
    assert "```" in tok.get_vocab()
    assert len(tok.encode("```python\n")) <= 3
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "2+2?"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"


def test_each_call_returns_an_independent_wrapper() -> None:
    a = tiny_tokenizer()
    a.add_tokens(["<extra_token_for_this_test>"])
    assert len(tiny_tokenizer()) == tiny_mod.TINY_VOCAB_SIZE


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_round_trip_of_arbitrary_text(text: str) -> None:
    tok = _TOK
    assert tok.decode(tok.encode(text)) == text


_TOK = tiny_tokenizer()


def test_model_is_deterministic_and_matches_the_tokenizer() -> None:
    a, b, c = tiny_model(seed=0), tiny_model(seed=0), tiny_model(seed=1)
    assert a.config.vocab_size == len(tiny_tokenizer())
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_model_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny_model(seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_model_forward_backward() -> None:
    tok = tiny_tokenizer()
    model = tiny_model(hidden=32, layers=1)
    enc = tok(["print(2 ** 10)", "x = 1"], return_tensors="pt", padding=True)
    out = model(**enc, labels=enc["input_ids"])
    assert out.logits.shape == (*enc["input_ids"].shape, len(tok))
    out.loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_model_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="divisible"):
        tiny_model(hidden=30)
    with pytest.raises(ValueError, match="smaller"):
        tiny_model(vocab_size=10)
