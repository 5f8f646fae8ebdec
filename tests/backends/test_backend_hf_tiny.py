"""The HF backend on a tiny random model: the real decode loop, fast."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from thor.agents.backends.hf import HFPolicy
from thor.errors import PolicyError
from thor.testing import check_policy, tiny_model, tiny_tokenizer
from thor.types import SamplingParams

GREEDY = SamplingParams(max_tokens=12, temperature=0.0)
PROMPTS = [
    "x = 1",
    "Let me compute this with python.\n```python\nprint(2 ** 10)\n```\n```output\n1024\n```\n",
    "What is 2+2?",
    "a",
    "The area is $\\frac{1}{2} \\cdot 6 \\cdot 8 = 24$, and so on and so on and so on.",
]


@pytest.fixture(scope="module")
def policy() -> HFPolicy:
    model = tiny_model(seed=3, hidden=64, layers=2).to(torch.float32)
    return HFPolicy.from_model(model, tiny_tokenizer())


def test_hf_policy_keeps_the_protocol(policy: HFPolicy) -> None:
    check_policy(policy, max_tokens=10)


def test_left_padded_batch_equals_one_at_a_time(policy: HFPolicy) -> None:
    batched = policy.generate(PROMPTS, GREEDY)
    for prompt, b in zip(PROMPTS, batched, strict=True):
        [alone] = policy.generate([prompt], GREEDY)
        assert alone.token_ids == b.token_ids
        assert alone.logprobs == pytest.approx(b.logprobs, abs=1e-4)


def test_rows_that_finish_early_leave_the_batch_without_changing_the_others(
    policy: HFPolicy,
) -> None:
    """Rows stopping at different steps exercise cache compaction and left-padding trimming."""
    sampled = SamplingParams(max_tokens=16, temperature=1.5, seed=0)  # greedy here just repeats
    free = policy.generate(PROMPTS, sampled)
    longest = max(range(len(PROMPTS)), key=lambda i: len(PROMPTS[i]))

    def spread(s: str) -> tuple[bool, int]:
        firsts = [c.text.find(s) for c in free]
        hit = [f for f in firsts if f >= 0]
        # the longest prompt stops first (so padding can be trimmed), others later or never
        ok = 0 <= firsts[longest] == min(hit) and len(set(firsts)) >= 3
        return ok, len(set(firsts))

    candidates = sorted(
        {ch for c in free for ch in c.text}, key=lambda ch: (not spread(ch)[0], -spread(ch)[1])
    )
    stop = candidates[0]
    assert spread(stop)[0], "no stop character separates the rows; change the prompts"
    params = sampled.model_copy(update={"stop": [stop]})
    batched = policy.generate(PROMPTS, params)
    reasons = {c.finish_reason for c in batched}
    assert "stop" in reasons and len({len(c.token_ids) for c in batched}) >= 3
    for i, (prompt, b, f) in enumerate(zip(PROMPTS, batched, free, strict=True)):
        [alone] = policy.generate([prompt], params.model_copy(update={"seed": i}))
        assert alone.token_ids == b.token_ids == f.token_ids[: len(b.token_ids)]
        assert alone.logprobs == pytest.approx(b.logprobs, abs=1e-4)


def test_sampling_is_reproducible_and_independent_of_batch_neighbours(policy: HFPolicy) -> None:
    params = SamplingParams(max_tokens=12, temperature=1.0, seed=7)
    a = policy.generate(PROMPTS, params)
    b = policy.generate(PROMPTS, params)
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    # row i is seeded seed + i: row 2 alone with seed + 2 draws the same tokens
    [alone] = policy.generate([PROMPTS[2]], params.model_copy(update={"seed": 9}))
    assert alone.token_ids == a[2].token_ids
    c = policy.generate(PROMPTS, params.model_copy(update={"seed": 8}))
    assert [x.token_ids for x in c] != [x.token_ids for x in a]


def test_a_group_of_identical_prompts_is_prefilled_once_and_sampled_apart(policy: HFPolicy) -> None:
    group = [PROMPTS[1]] * 6
    greedy = policy.generate(group, GREEDY)
    assert len({tuple(c.token_ids) for c in greedy}) == 1
    sampled = policy.generate(group, SamplingParams(max_tokens=12, temperature=1.5, seed=0))
    assert len({tuple(c.token_ids) for c in sampled}) > 1
    # rows agree with the same prompts sent with their seeds one by one
    for i in (0, 3):
        [alone] = policy.generate(
            [group[i]], SamplingParams(max_tokens=12, temperature=1.5, seed=i)
        )
        assert alone.token_ids == sampled[i].token_ids


def test_logprobs_are_temperature_scaled_before_truncation(policy: HFPolicy) -> None:
    tok = policy.tokenizer
    prompt = tok.encode(PROMPTS[2], add_special_tokens=False)
    for params in (
        SamplingParams(max_tokens=10, temperature=0.7, top_p=0.5, top_k=20, seed=1),
        SamplingParams(max_tokens=10, temperature=0.0),
    ):
        [c] = policy.generate([prompt], params)
        ids = torch.tensor([prompt + c.token_ids])
        with torch.no_grad():
            logits = policy.model(ids).logits[0, len(prompt) - 1 : -1].float()
        temp = params.temperature or 1.0
        expected = torch.log_softmax(logits / temp, -1).gather(
            -1, torch.tensor(c.token_ids)[:, None]
        )[:, 0]
        assert c.logprobs == pytest.approx(expected.tolist(), abs=1e-4)


def test_top_k_one_is_greedy(policy: HFPolicy) -> None:
    a = policy.generate(PROMPTS, SamplingParams(max_tokens=10, temperature=1.3, top_k=1, seed=5))
    b = policy.generate(PROMPTS, SamplingParams(max_tokens=10, temperature=0.0))
    assert [c.token_ids for c in a] == [c.token_ids for c in b]


def test_stop_strings_on_the_real_loop(policy: HFPolicy) -> None:
    [free] = policy.generate([PROMPTS[0]], SamplingParams(max_tokens=30, temperature=0.0))
    assert len(free.text) > 6
    stop = free.text[3:6]
    [cut] = policy.generate(
        [PROMPTS[0]], SamplingParams(max_tokens=30, temperature=0.0, stop=[stop])
    )
    assert cut.finish_reason == "stop"
    assert stop in cut.text and stop not in policy.decode(cut.token_ids[:-1])
    assert free.token_ids[: len(cut.token_ids)] == cut.token_ids


def test_generation_restores_train_mode_and_uses_the_same_module() -> None:
    model = tiny_model(seed=1)
    model.train()
    policy = HFPolicy.from_model(model, tiny_tokenizer())
    assert policy.model is model
    policy.generate(["x"], SamplingParams(max_tokens=3, temperature=0))
    assert model.training
    # weights changed in place are seen by the next generation (no copy)
    before = policy.generate(["x = 1"], GREEDY)[0]
    with torch.no_grad():
        model.lm_head.weight.mul_(-1.0)
    after = policy.generate(["x = 1"], GREEDY)[0]
    assert after.logprobs != before.logprobs


def test_a_prompt_that_fills_the_context_gets_an_empty_length_completion() -> None:
    policy = HFPolicy.from_model(tiny_model(seed=2), tiny_tokenizer(), max_model_len=8)
    long_prompt = list(range(10, 20))
    out = policy.generate([long_prompt, [10, 11]], SamplingParams(max_tokens=50, temperature=0))
    assert (out[0].token_ids, out[0].finish_reason) == ([], "length")
    assert len(out[1].token_ids) <= 6


def test_bad_prompts_and_closed_policy(policy: HFPolicy) -> None:
    with pytest.raises(PolicyError, match="empty prompt"):
        policy.generate([""], GREEDY)
    other = HFPolicy.from_model(tiny_model(), tiny_tokenizer())
    other.close()
    other.close()
    with pytest.raises(PolicyError, match="close"):
        other.generate(["x"], GREEDY)


class _ScriptLM(torch.nn.Module):
    """A causal LM stand-in that writes a fixed token script after a prompt of known length.

    It drives HFPolicy's real decode loop (cache, compaction, stop checks) through text a random
    model would never write: a python block followed by more text.
    """

    def __init__(self, script: list[int], prompt_len: int, vocab: int, eos: int) -> None:
        super().__init__()
        self.script, self.prompt_len, self.vocab, self.eos = script, prompt_len, vocab, eos
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.config = type("Cfg", (), {"max_position_embeddings": 4096, "name_or_path": "script"})()
        self.generation_config = type("Gen", (), {"eos_token_id": eos})()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: Any = None,
        position_ids: Any = None,
        cache: Any = None,
        use_cache: bool = True,
        logits_to_keep: int = 0,
    ) -> Any:
        step = position_ids + 1 - self.prompt_len
        logits = torch.full((*input_ids.shape, self.vocab), -10.0)
        for b in range(input_ids.shape[0]):
            for t in range(input_ids.shape[1]):
                s = int(step[b, t])
                nxt = self.script[s] if 0 <= s < len(self.script) else self.eos
                logits[b, t, nxt] = 10.0
        if logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        return type("Out", (), {"logits": logits})()


def test_the_loop_stops_right_after_the_closing_fence() -> None:
    tok = tiny_tokenizer()
    text = "I will compute.\n```python\nprint(6 * 7)\n```\n```output\n42\n```\nSo the answer is 42."
    script = tok.encode(text, add_special_tokens=False)
    prompt = tok.encode("Q: 6*7?\n", add_special_tokens=False)
    lm = _ScriptLM(script, len(prompt), len(tok), tok.eos_token_id)
    policy = HFPolicy.from_model(lm, tok)
    out = policy.generate(
        [prompt, prompt], SamplingParams(max_tokens=200, stop_at_code_close=True, temperature=0)
    )
    for c in out:
        assert c.finish_reason == "code_close"
        assert c.text.startswith("I will compute.\n```python\nprint(6 * 7)\n```")
        assert "42\n```" not in c.text and c.token_ids == script[: len(c.token_ids)]
    [free] = policy.generate([prompt], SamplingParams(max_tokens=200, temperature=0))
    assert (free.token_ids, free.finish_reason) == (script, "eos")
    [short] = policy.generate([prompt], SamplingParams(max_tokens=5, temperature=0))
    assert (short.token_ids, short.finish_reason) == (script[:5], "length")
