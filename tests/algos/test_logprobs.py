from __future__ import annotations

import pytest
import torch

from thor.algos.logprobs import token_logprobs, token_logprobs_and_entropy
from thor.algos.losses import GRPOLoss
from thor.testing import tiny_model, tiny_tokenizer

TEXTS = ["Let me compute.\n```python\nprint(2 ** 10)\n```", "x = 1", "The answer is \\boxed{12}."]


@pytest.fixture(scope="module")
def setup():  # type: ignore[no-untyped-def]
    tok = tiny_tokenizer()
    model = tiny_model(seed=3).eval()
    enc = tok(TEXTS, return_tensors="pt", padding=True)  # right padding
    return tok, model, enc["input_ids"], enc["attention_mask"]


def _naive(model, ids, mask, temperature=1.0):  # type: ignore[no-untyped-def]
    logits = model(input_ids=ids, attention_mask=mask).logits.float() / temperature
    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    ent = -(torch.softmax(logits[:, :-1], -1) * torch.log_softmax(logits[:, :-1], -1)).sum(-1)
    valid = (mask[:, 1:] * mask[:, :-1]).bool()
    pad = torch.zeros(ids.shape[0], 1)
    return torch.cat([pad, logp * valid], 1), torch.cat([pad, ent * valid], 1)


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_matches_naive_log_softmax(setup, temperature: float) -> None:  # type: ignore[no-untyped-def]
    _, model, ids, mask = setup
    with torch.no_grad():
        lp, ent = token_logprobs_and_entropy(model, ids, mask, temperature=temperature)
        ref_lp, ref_ent = _naive(model, ids, mask, temperature)
    assert lp.shape == ids.shape and lp.dtype == torch.float32
    torch.testing.assert_close(lp, ref_lp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent, ref_ent, atol=1e-5, rtol=1e-5)
    assert (lp[:, 0] == 0).all() and (lp[mask == 0] == 0).all()


def test_alignment_position_t_scores_token_t(setup) -> None:  # type: ignore[no-untyped-def]
    _, model, ids, mask = setup
    with torch.no_grad():
        lp = token_logprobs(model, ids, mask)
        # score token 5 of row 0 by hand: the distribution after ids[:5]
        logits = model(input_ids=ids[:1, :5]).logits[0, -1]
    assert lp[0, 5].item() == pytest.approx(
        torch.log_softmax(logits, -1)[ids[0, 5]].item(), abs=1e-5
    )


def test_chunked_equals_unchunked_and_padding_does_not_matter(setup) -> None:  # type: ignore[no-untyped-def]
    tok, model, ids, mask = setup
    with torch.no_grad():
        full = token_logprobs(model, ids, mask)
        for chunk in (1, 2, 5):
            torch.testing.assert_close(
                token_logprobs(model, ids, mask, chunk=chunk), full, atol=1e-5, rtol=1e-5
            )
        for i, text in enumerate(TEXTS):
            alone = torch.tensor([tok.encode(text)])
            n = alone.shape[1]
            torch.testing.assert_close(
                token_logprobs(model, alone)[0], full[i, :n], atol=1e-5, rtol=1e-5
            )
        # left padding gives the same scores (positions come from the mask)
        left = tok(TEXTS, return_tensors="pt", padding=True, padding_side="left")
        lp_left = token_logprobs(model, left["input_ids"], left["attention_mask"])
        for i in range(len(TEXTS)):
            n = int(mask[i].sum())
            torch.testing.assert_close(lp_left[i, -n:], full[i, :n], atol=1e-4, rtol=1e-4)


def test_gradient_flows_and_masked_positions_get_none(setup) -> None:  # type: ignore[no-untyped-def]
    _, _, ids, mask = setup
    model = tiny_model(seed=4)
    lp = token_logprobs(model, ids, mask)
    lp.retain_grad()
    loss_mask = mask.clone()
    loss_mask[:, :3] = 0  # a "prompt" of three tokens
    out = GRPOLoss()(lp, lp.detach(), torch.tensor([1.0, -1.0, 0.5]), loss_mask)
    out.loss.backward()
    assert lp.grad is not None
    assert torch.equal(lp.grad[loss_mask == 0], torch.zeros(int((loss_mask == 0).sum())))
    assert (lp.grad[loss_mask == 1] != 0).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_a_step_raises_positive_and_lowers_negative_samples(setup) -> None:  # type: ignore[no-untyped-def]
    _, _, ids, mask = setup
    model = tiny_model(seed=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    adv = torch.tensor([1.0, -1.0, 0.0])
    before = token_logprobs(model, ids, mask).detach()
    out = GRPOLoss(nll_coef=0.0)(token_logprobs(model, ids, mask), before, adv, mask)
    out.loss.backward()
    opt.step()
    with torch.no_grad():
        after = token_logprobs(model, ids, mask)
    seq = lambda lp, i: (lp[i] * mask[i]).sum().item()  # noqa: E731
    assert seq(after, 0) > seq(before, 0)
    assert seq(after, 1) < seq(before, 1)


def test_bad_inputs(setup) -> None:  # type: ignore[no-untyped-def]
    _, model, ids, mask = setup
    with pytest.raises(ValueError, match="temperature"):
        token_logprobs(model, ids, mask, temperature=0.0)
    with pytest.raises(ValueError, match="chunk"):
        token_logprobs(model, ids, mask, chunk=0)
    with pytest.raises(ValueError, match="attention_mask"):
        token_logprobs(model, ids, mask[:, :-1])
    with pytest.raises(ValueError, match="batch, tokens"):
        token_logprobs(model, ids[0], mask[0])
    one = token_logprobs(model, ids[:, :1], mask[:, :1])
    assert torch.equal(one, torch.zeros(3, 1))


@pytest.mark.parametrize("side", ["right", "left"])
def test_packed_path_equals_the_padded_forward_with_gradients(side: str) -> None:
    """Llama-family models on a CPU are scored packed (no padding); values and gradients agree."""
    from thor.algos import logprobs

    tok = tiny_tokenizer()
    tok.padding_side = side
    enc = tok([*TEXTS, "y"], return_tensors="pt", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert logprobs._packable(tiny_model(seed=3), mask) is not None
    results = []
    for packed in (True, False):
        model = tiny_model(seed=3).train()
        if not packed:
            model.config.attention_dropout = 1e-9  # makes the packed path decline (still exact)
        assert (logprobs._packable(model, mask) is not None) is packed
        lp, ent = token_logprobs_and_entropy(model, ids, mask, temperature=0.7)
        lp.sum().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((lp.detach(), ent, grads))
    (a, ea, ga), (b, eb, gb) = results
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(ea, eb, atol=1e-5)
    assert len(ga) == len(gb)
    for x, y in zip(ga, gb, strict=True):
        assert torch.allclose(x, y, atol=1e-5)


def test_rows_with_holes_in_the_mask_are_not_packed() -> None:
    from thor.algos.logprobs import _packable

    mask = torch.tensor([[1, 0, 1, 1], [1, 1, 1, 1]])
    assert _packable(tiny_model(seed=3), mask) is None
    assert _packable(tiny_model(seed=3), torch.tensor([[0, 1, 1, 0]])) == [(1, 2)]
