from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thor.text.protocol import (
    OutputFormat,
    code_close_end,
    extract_boxed,
    find_code_block,
    find_code_blocks,
    format_output,
    last_error_line,
    shorten,
)
from thor.types import ExecResult

FENCE = "```"


def test_finds_closed_block_at_end_of_action() -> None:
    text = f"Compute it.\n{FENCE}python\nx = 2\nprint(x ** 10)\n{FENCE}\n"
    block = find_code_block(text)
    assert block is not None and block.closed
    assert block.code == "x = 2\nprint(x ** 10)"
    assert text[block.start :].startswith(f"{FENCE}python")


def test_block_not_at_end_is_not_an_action() -> None:
    text = f"{FENCE}python\nprint(1)\n{FENCE}\nand then the answer is \\boxed{{1}}"
    assert find_code_block(text) is None
    assert len(find_code_blocks(text)) == 1


def test_unclosed_trailing_block() -> None:
    text = f"Let me try\n{FENCE}python\nfor i in range(3):\n    print(i)"
    assert find_code_block(text) is None
    block = find_code_block(text, allow_unclosed=True)
    assert block is not None and not block.closed and "range(3)" in block.code
    assert block.end == len(text)


def test_language_tags_and_other_fences() -> None:
    assert find_code_block(f"{FENCE}py\nprint(1)\n{FENCE}") is not None
    assert find_code_block(f"{FENCE}python3\nprint(1)\n{FENCE}") is not None
    assert find_code_block(f"{FENCE}output\n1\n{FENCE}") is None
    assert find_code_block(f"{FENCE}\nprint(1)\n{FENCE}") is None  # an untagged fence is not python
    assert find_code_block(f"{FENCE}pythonic\nx\n{FENCE}") is None


def test_several_blocks_last_one_runs() -> None:
    text = f"{FENCE}python\na=1\n{FENCE}\n{FENCE}output\n\n{FENCE}\nnow\n{FENCE}python\nprint(a)\n{FENCE}"
    blocks = find_code_blocks(text)
    assert [b.code for b in blocks] == ["a=1", "print(a)"]
    assert find_code_block(text).code == "print(a)"  # type: ignore[union-attr]


def test_code_close_end_ignores_the_opening_fence() -> None:
    assert code_close_end(f"intro {FENCE}python\n") is None
    assert code_close_end(f"intro\n{FENCE}python\nprint(1)\n") is None
    text = f"intro\n{FENCE}python\nprint(1)\n{FENCE}\n\nmore"
    end = code_close_end(text)
    assert end is not None and text[:end].endswith(f"print(1)\n{FENCE}")
    assert code_close_end(f"{FENCE}output\n1\n{FENCE}") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"\boxed{42}", "42"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"first \boxed{1} then \boxed{2}", "2"),
        (r"\fbox{7}", "7"),
        (r"\boxed 5", "5"),
        (r"\boxed{a^{b^{c}}}", "a^{b^{c}}"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
        (r"\boxed{3} and \boxed{4", "3"),
        (r"\boxed{", None),
        ("no box here", None),
        ("", None),
    ],
)
def test_extract_boxed(text: str, expected: str | None) -> None:
    assert extract_boxed(text) == expected


def test_format_output_shapes() -> None:
    assert format_output(ExecResult(status="ok", stdout="42\n")) == f"{FENCE}output\n42\n{FENCE}\n"
    err = ExecResult(
        status="error", stderr='Traceback:\n  File "<cell>"\nZeroDivisionError: division by zero\n'
    )
    assert format_output(err) == f"{FENCE}output\nZeroDivisionError: division by zero\n{FENCE}\n"
    long = "x" * 1000
    out = format_output(ExecResult(status="ok", stdout=long))
    assert out == f"{FENCE}output\n{'x' * 128}...{'x' * 128}\n{FENCE}\n"
    assert "TimeoutError" in format_output(ExecResult(status="timeout", reason="30 s"))
    assert "SIGSEGV" in format_output(ExecResult(status="killed", reason="killed by SIGSEGV"))
    custom = OutputFormat(max_chars=10, head_chars=2, tail_chars=3)
    assert shorten("abcdefghijkl", custom) == "ab...jkl"
    assert shorten("short", custom) == "short"
    assert shorten("x" * 255) == "x" * 255  # under 256 stays whole
    assert len(shorten("x" * 256)) == 128 + 3 + 128


def test_last_error_line() -> None:
    assert last_error_line("a\nb\n\n") == "b"
    assert last_error_line("") == ""


@settings(max_examples=300)
@given(st.text())
def test_parsers_are_total(text: str) -> None:
    blocks = find_code_blocks(text)
    for b in blocks:
        assert 0 <= b.start <= b.end <= len(text)
    find_code_block(text)
    find_code_block(text, allow_unclosed=True)
    end = code_close_end(text)
    assert end is None or 0 < end <= len(text)
    extract_boxed(text)
    format_output(ExecResult(status="error", stderr=text))
    format_output(ExecResult(status="ok", stdout=text))


fragments = st.sampled_from(
    [
        f"{FENCE}python\n",
        f"{FENCE}\n",
        "\n",
        "print(1)",
        "\\boxed{",
        "}",
        "{",
        "text ",
        f"{FENCE}output\n",
        "\\",
    ]
)


@settings(max_examples=300)
@given(st.lists(fragments, max_size=30).map("".join))
def test_parsers_are_total_on_protocol_soup(text: str) -> None:
    test_parsers_are_total.hypothesis.inner_test(text)  # type: ignore[attr-defined]
    end = code_close_end(text)
    if end is not None:  # a stop always ends right after a closing fence of an opened block
        assert text[:end].endswith(FENCE)
        assert find_code_blocks(text[:end])[0].closed


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(blacklist_characters="`"), max_size=200))
def test_code_round_trips_through_fences(code: str) -> None:
    code = code.replace("\r", "")
    text = f"reasoning\n{FENCE}python\n{code}\n{FENCE}"
    block = find_code_block(text)
    if any(line.lstrip(" \t").startswith(FENCE) for line in code.split("\n")):
        return
    assert block is not None and block.code == code
