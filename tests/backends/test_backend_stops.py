"""The stop rules every backend shares: code close, stop strings, EOS, length."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thor.agents.backends.base import (
    IncrementalDecoder,
    StopChecker,
    TickTokens,
    apply_stops,
    check_prompts,
)
from thor.testing import ByteTokenizer, tiny_tokenizer
from thor.text.protocol import code_close_end
from thor.types import SamplingParams

TINY = tiny_tokenizer()
BYTES = ByteTokenizer()


def tiny_decode(ids: list[int]) -> str:
    return TINY.decode(ids, skip_special_tokens=False)


def tiny_encode(text: str) -> list[int]:
    return TINY.encode(text, add_special_tokens=False)


CODE = SamplingParams(stop_at_code_close=True, max_tokens=4096)

# Text built from pieces that make fences likely, with arbitrary text around them.
pieces = st.sampled_from(
    [
        "```python\n",
        "```py\n",
        "```",
        "\n```\n",
        "```output\n",
        "print(1)\n",
        "x = 2",
        "\n",
        " ",
        "`",
        "``",
        "python",
        "é",
        "\\boxed{3}",
        "```python",
        "  ```",
        "def f():\n    return 1\n",
    ]
)
texts = st.lists(st.one_of(pieces, st.text(max_size=6)), max_size=14).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_code_close_never_cuts_at_an_opening_fence_and_stops_right_after_a_closing_one(
    text: str,
) -> None:
    ids = tiny_encode(text)
    kept, reason = apply_stops(ids, tiny_decode, CODE)
    kept_text = tiny_decode(kept)
    if reason == "code_close":
        # the kept text contains a closed python block, and one token fewer does not
        assert code_close_end(kept_text) is not None
        assert code_close_end(tiny_decode(kept[:-1])) is None
        assert kept == ids[: len(kept)]
    else:
        # no token prefix closes a block (so we did not miss a stop)
        assert reason == "length" or reason is None
        assert all(code_close_end(tiny_decode(ids[:k])) is None for k in range(len(ids) + 1))


@settings(max_examples=120, deadline=None)
@given(texts)
def test_code_close_on_bytes_agrees_with_the_text_rule(text: str) -> None:
    """With one token per byte the cut must land exactly at ``code_close_end`` of the text."""
    ids = BYTES.encode(text)
    kept, reason = apply_stops(ids, BYTES.decode, CODE)
    end = code_close_end(text)
    if end is None:
        assert reason is None
        assert kept == ids
    else:
        # the first prefix that closes a block, in bytes, ends at a closing fence's last backtick
        kept_text = BYTES.decode(kept)
        assert reason == "code_close"
        assert kept_text.endswith("`")
        assert code_close_end(kept_text) == len(kept_text)


TINY_TICKS = TickTokens(tiny_decode, len(TINY))
BYTE_TICKS = TickTokens(BYTES.decode, 256)


def run_checker(ids: list[int], decode: object, ticks: TickTokens | None) -> tuple[int, str | None]:
    checker = StopChecker(decode, CODE, tick_tokens=ticks)  # type: ignore[arg-type]
    for i, t in enumerate(ids):
        if checker.push(t):
            return i + 1, checker.finish_reason
    return len(ids), checker.finish_reason


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_decoding_only_at_backtick_tokens_stops_where_decoding_every_token_does(text: str) -> None:
    """The fast path of the decode loop (text decoded only at tokens that may hold a backtick,
    held-back multibyte characters re-checked once released) cuts exactly where the plain one does."""
    for ids, decode, ticks in (
        (tiny_encode(text), tiny_decode, TINY_TICKS),
        (BYTES.encode(text), BYTES.decode, BYTE_TICKS),
    ):
        assert run_checker(ids, decode, ticks) == run_checker(ids, decode, None)


def test_tick_tokens_are_the_ids_whose_text_has_a_backtick_and_any_id_past_the_vocabulary() -> None:
    assert BYTE_TICKS.ids == {ord("`")}
    assert ord("`") in BYTE_TICKS and ord("a") not in BYTE_TICKS
    assert 256 in BYTE_TICKS and 10**6 in BYTE_TICKS  # unknown to the tokenizer: decode to be safe
    assert all("`" in tiny_decode([i]) for i in TINY_TICKS.ids) and TINY_TICKS.ids


def test_token_that_carries_characters_past_the_fence_is_kept_whole() -> None:
    text = "Let me compute.\n```python\nprint(2 ** 10)\n```\nThe answer"
    ids = tiny_encode(text)
    kept, reason = apply_stops(ids, tiny_decode, CODE)
    kept_text = tiny_decode(kept)
    assert reason == "code_close"
    end = code_close_end(kept_text)
    assert end is not None and kept_text[:end] == text[:end]
    assert text.startswith(
        kept_text
    )  # a prefix of the model's text, whatever the last token carried


def test_opening_fence_alone_does_not_stop() -> None:
    ids = tiny_encode("Now:\n```python\nx = 1\nprint(x)")
    kept, reason = apply_stops(ids, tiny_decode, CODE)
    assert reason is None and kept == ids


def test_output_fence_or_plain_fences_do_not_count_as_python_close() -> None:
    text = "```\nplain\n```\n```output\n1\n```"
    kept, reason = apply_stops(tiny_encode(text), tiny_decode, CODE)
    assert reason is None and tiny_decode(kept) == text


def test_stop_strings_keep_the_completing_token() -> None:
    text = "first line\nANSWER: 42\nmore"
    params = SamplingParams(stop=["ANSWER:"], max_tokens=100)
    kept, reason = apply_stops(tiny_encode(text), tiny_decode, params)
    kept_text = tiny_decode(kept)
    assert reason == "stop"
    assert "ANSWER:" in kept_text and "ANSWER:" not in tiny_decode(kept[:-1])


def test_stop_string_spanning_many_single_byte_tokens() -> None:
    params = SamplingParams(stop=["<END>"], max_tokens=100)
    kept, reason = apply_stops(BYTES.encode("abc<EN<END>zzz"), BYTES.decode, params)
    assert (BYTES.decode(kept), reason) == ("abc<EN<END>", "stop")


def test_eos_is_not_kept_and_ends_the_completion() -> None:
    ids = [*BYTES.encode("hi"), BYTES.eos_token_id, *BYTES.encode("more")]
    kept, reason = apply_stops(ids, BYTES.decode, SamplingParams(), {BYTES.eos_token_id})
    assert (kept, reason) == (BYTES.encode("hi"), "eos")


def test_length_is_max_tokens_and_code_close_wins_a_tie() -> None:
    ids = BYTES.encode("abcdef")
    assert apply_stops(ids, BYTES.decode, SamplingParams(max_tokens=4)) == (ids[:4], "length")
    text = "```python\nx\n```"
    ids = BYTES.encode(text)
    kept, reason = apply_stops(
        ids, BYTES.decode, SamplingParams(max_tokens=len(ids), stop_at_code_close=True)
    )
    assert (kept, reason) == (ids, "code_close")


def test_checker_refuses_tokens_after_finishing() -> None:
    checker = StopChecker(BYTES.decode, SamplingParams(max_tokens=1))
    assert checker.push(65) == "length"
    with pytest.raises(RuntimeError):
        checker.push(66)


@settings(max_examples=120, deadline=None)
@given(st.text(max_size=60))
def test_incremental_decoder_matches_full_decode(text: str) -> None:
    for encode, decode in ((tiny_encode, tiny_decode), (BYTES.encode, BYTES.decode)):
        ids = encode(text)
        dec = IncrementalDecoder(decode)
        for t in ids:
            dec.push(t)
        # every character is emitted once its last byte arrives, and the pieces add up exactly
        assert dec.text == decode(ids) == text


def test_check_prompts_rejects_what_is_not_a_prompt() -> None:
    assert check_prompts(["a", [1, 2]]) == ["a", [1, 2]]
    with pytest.raises(TypeError, match="sequence of prompts"):
        check_prompts("abc")
    with pytest.raises(TypeError, match="apply_chat_template"):
        check_prompts([[{"role": "user", "content": "hi"}]])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="empty"):
        check_prompts([[]])
    with pytest.raises(ValueError, match="negative"):
        check_prompts([[1, -2]])
