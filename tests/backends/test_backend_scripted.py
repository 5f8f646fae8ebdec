"""ScriptedPolicy: the fake that agent tests use behaves like a real backend."""

from __future__ import annotations

import pytest

from thor.errors import PolicyError
from thor.testing import ByteTokenizer, ScriptedPolicy, check_policy
from thor.types import SamplingParams

RESPONSE = "Let me check.\n```python\nprint(6 * 7)\n```\n```output\n42\n```\nSo \\boxed{42}."


@pytest.mark.parametrize("tokenizer", [None, ByteTokenizer()], ids=["tiny-bpe", "bytes"])
def test_scripted_policy_keeps_the_protocol(tokenizer: object) -> None:
    check_policy(ScriptedPolicy(lambda prompt: RESPONSE, tokenizer=tokenizer))


def test_responses_are_consumed_in_order_and_running_out_is_an_error() -> None:
    policy = ScriptedPolicy(["one", "two", "three"], tokenizer=ByteTokenizer())
    out = policy.generate(["a", "b"], SamplingParams())
    assert [c.text for c in out] == ["one", "two"]
    assert [c.finish_reason for c in out] == ["eos", "eos"]
    assert policy.remaining == 1
    with pytest.raises(PolicyError, match="ran out"):
        policy.generate(["c", "d"], SamplingParams())
    assert policy.calls == [["a", "b"], ["c", "d"]]


def test_stop_at_code_close_cuts_like_a_real_backend() -> None:
    policy = ScriptedPolicy([RESPONSE, RESPONSE])
    [cut] = policy.generate(["q"], SamplingParams(stop_at_code_close=True))
    assert cut.finish_reason == "code_close"
    assert cut.text == policy.decode(cut.token_ids)
    assert cut.text.startswith("Let me check.\n```python\nprint(6 * 7)\n```")
    assert "output" not in cut.text
    [full] = policy.generate(["q"], SamplingParams())
    assert (full.text, full.finish_reason) == (RESPONSE, "eos")


def test_max_tokens_and_stop_strings() -> None:
    policy = ScriptedPolicy(lambda p: "abcdefghij", tokenizer=ByteTokenizer())
    [c] = policy.generate(["q"], SamplingParams(max_tokens=4))
    assert (c.text, c.finish_reason, len(c.logprobs or [])) == ("abcd", "length", 4)
    [c] = policy.generate(["q"], SamplingParams(stop=["def"]))
    assert (c.text, c.finish_reason) == ("abcdef", "stop")


def test_fake_logprobs_are_deterministic_and_negative() -> None:
    policy = ScriptedPolicy(lambda p: RESPONSE)
    a = policy.generate(["q"], SamplingParams())[0]
    b = policy.generate(["q"], SamplingParams())[0]
    assert a.logprobs == b.logprobs
    assert a.logprobs and all(lp < 0 for lp in a.logprobs)


def test_a_function_sees_the_prompt_text_also_for_token_prompts() -> None:
    seen: list[str] = []
    policy = ScriptedPolicy(lambda p: seen.append(p) or "ok", tokenizer=ByteTokenizer())
    policy.generate(["hello", ByteTokenizer().encode("world")], SamplingParams())
    assert seen == ["hello", "world"]
    with pytest.raises(TypeError):
        ScriptedPolicy("not a list")  # type: ignore[arg-type]
