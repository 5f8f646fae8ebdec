"""Final-answer extraction: strict boxed by default, lenient fallbacks on request."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thor.rewards import extract_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so \boxed{5}", "5"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"nested \boxed{\sqrt{\frac{a}{b^{2}}}} done", r"\sqrt{\frac{a}{b^{2}}}"),
        (r"first \boxed{1} then \boxed{2}", "2"),
        (r"\fbox{7}", "7"),
        (r"the last box \boxed{3} wins over \fbox{4}? no: \fbox{4} is last", "4"),
        (r"closed \boxed{8} then unclosed \boxed{9", "8"),
        (r"$\boxed{ 12 }$.", "12"),
        (r"\boxed 5", "5"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
    ],
)
def test_boxed_mode_takes_the_last_closed_box(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    ["The answer is 42.", "Final answer: 42", "**42**", "no answer at all", r"\boxed{}", ""],
)
def test_boxed_mode_is_strict(text: str) -> None:
    assert extract_answer(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Therefore, the answer is 42.", "42"),
        ("The final answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
        ("Final answer: 0.5", "0.5"),
        ("Answer: (1, 2)\n", "(1, 2)"),
        ("Adding them up gives **73**", "73"),
        ("I computed 3, then 5.\nSo we get 17 apples", "17"),
        ("The answer is 7. Later I say the answer is 8.", "8"),
        (r"The answer is 42, but \boxed{41}", "41"),  # a box always wins
        ("Let me answer the question. It is 6", "6"),  # 'answer' without 'is'/':' is no anchor
    ],
)
def test_lenient_mode_fallbacks(text: str, expected: str) -> None:
    assert extract_answer(text, mode="lenient") == expected


def test_lenient_mode_without_anything_gives_none() -> None:
    assert extract_answer("no digits here\n\n", mode="lenient") is None


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="lenient"):
        extract_answer("x", mode="loose")  # type: ignore[arg-type]


def test_non_text_gives_none() -> None:
    assert extract_answer(None) is None  # type: ignore[arg-type]
    assert extract_answer(b"\\boxed{1}") is None  # type: ignore[arg-type]


@pytest.mark.timeout(60)
@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from(["boxed", "lenient"]))
def test_extraction_is_total(text: str, mode: str) -> None:
    out = extract_answer(text, mode=mode)  # type: ignore[arg-type]
    assert out is None or (isinstance(out, str) and out.strip())


@pytest.mark.timeout(60)
def test_extraction_of_big_and_degenerate_texts_terminates() -> None:
    big = "x" * 1_000_000 + "\\boxed{" * 5000 + "\\boxed{5}" + " \\boxed{" * 3 + "\n" + "9" * 1000
    assert extract_answer(big) == "5"
    assert extract_answer(big, mode="lenient") == "5"
    # 16k tokens of unclosed boxes: only the last few are tried, so this is no answer, quickly
    degenerate = "\\boxed{1} " + "\\boxed{" * 10_000
    assert extract_answer(degenerate) is None
    assert extract_answer("\\boxed{1} " + "\\boxed{" * 5) == "1"  # a few unclosed: earlier box kept
