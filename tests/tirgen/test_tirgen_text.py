"""TIRGen text helpers: fence parsing (robust to malformed critic output), windows, spans."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from thor.data.tirgen.text import (
    Part,
    Piece,
    code_piece,
    join_pieces,
    model_spans,
    output_piece,
    same_text,
    snap_window,
    split_fenced,
    text_of_parts,
)
from thor.text.protocol import find_code_blocks, format_output
from thor.types import ExecResult


def kinds(parts: list[Part]) -> list[tuple[str, str]]:
    return [(p.kind, p.text) for p in parts]


def test_plain_block_and_predicted_output_dropped() -> None:
    parts, notes = split_fenced("A.\n```python\nprint(1)\n```\n```output\n999\n```\nB.\n")
    assert kinds(parts) == [("text", "A.\n"), ("code", "print(1)"), ("text", "B.\n")]
    assert notes == ["predicted_output_dropped"]


def test_nested_opening_fence_is_skipped() -> None:
    parts, notes = split_fenced("A.\n```python\n```python\nprint(2)\n```\nB.")
    assert kinds(parts) == [("text", "A.\n"), ("code", "print(2)"), ("text", "B.")]
    assert "nested_fence" in notes


def test_unclosed_block_is_closed_at_the_end() -> None:
    parts, notes = split_fenced("A.\n```python\nprint(3)\n")
    assert kinds(parts) == [("text", "A.\n"), ("code", "print(3)")]
    assert "unclosed_fence" in notes


def test_code_running_into_a_predicted_output_is_closed_there() -> None:
    parts, notes = split_fenced("A.\n```python\nprint(4)\n```output\n4\n```\nB.")
    assert kinds(parts) == [("text", "A.\n"), ("code", "print(4)"), ("text", "B.")]
    assert "unclosed_fence" in notes and "predicted_output_dropped" in notes


def test_inline_fences() -> None:
    parts, notes = split_fenced("A. ```python\nprint(5)```\nB.")
    assert kinds(parts) == [("text", "A. "), ("code", "print(5)"), ("text", "B.")]
    assert "inline_fence" in notes


def test_untagged_block_is_python_only_when_it_parses_and_prints() -> None:
    parts, _ = split_fenced("A.\n```\nprint(6)\n```\n")
    assert kinds(parts) == [("text", "A.\n"), ("code", "print(6)")]
    parts, _ = split_fenced("A.\n```\nnot code at all\n```\n")
    assert [p.kind for p in parts] == ["text"]
    assert text_of_parts(parts) == "A.\n```\nnot code at all\n```\n"


def test_other_languages_and_empty_blocks_stay_out_of_code() -> None:
    parts, notes = split_fenced("A.\n```latex\nx^2\n```\n```python\n\n```\n")
    assert [p.kind for p in parts] == ["text"]
    assert "empty_block_dropped" in notes


def test_no_fences_is_one_text_part() -> None:
    parts, notes = split_fenced("Just reasoning.\nNo code.\n")
    assert kinds(parts) == [("text", "Just reasoning.\nNo code.\n")] and notes == []


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab \n`pythonuq()1=")), max_size=200))
def test_split_fenced_is_total(text: str) -> None:
    parts, notes = split_fenced(text)
    assert all(isinstance(p, Part) for p in parts)
    if "```" not in text:
        assert text_of_parts(parts) == text


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet=st.sampled_from(list("abc .,=+\n")), min_size=1, max_size=30),
            st.sampled_from(["print(1)", "x = 2\nprint(x)", "import math\nprint(math.pi)"]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_text_around_blocks_round_trips(segments: list[tuple[str, str]]) -> None:
    """Text, then a well-formed block, repeated: the text parts give the text back, the code the code."""
    raw = "".join(f"{t}\n```python\n{c}\n```\n" for t, c in segments)
    parts, _ = split_fenced(raw)
    assert same_text(text_of_parts(parts), "".join(t for t, _ in segments))
    assert [p.text for p in parts if p.kind == "code"] == [c for _, c in segments]


def test_snap_window() -> None:
    assert snap_window("line one\nline tw") == "line one\n"
    assert snap_window("no newline at all") == "no newline at all"
    assert snap_window("ends\n") == "ends\n"
    assert snap_window("") == ""


def test_pieces_spans_and_the_env_format() -> None:
    result = ExecResult(status="ok", stdout="1024\n")
    pieces = [
        Piece(kind="text", text="Compute 2^10.\n"),
        code_piece("print(2 ** 10)"),
        output_piece(result),
        Piece(kind="text", text="So \\boxed{1024}."),
    ]
    text = join_pieces(pieces)
    # exactly what TIREnv appends after a turn that ends at the closing fence
    assert (
        text
        == "Compute 2^10.\n```python\nprint(2 ** 10)\n```\n"
        + format_output(result)
        + "So \\boxed{1024}."
    )
    [block] = find_code_blocks(text)
    assert block.code == "print(2 ** 10)" and block.closed
    spans = model_spans(pieces)
    assert len(spans) == 2
    model = "".join(text[a:b] for a, b in spans)
    assert "1024\n```\n" not in model and model.endswith("So \\boxed{1024}.")
    assert "```output" not in model
    masked = text[spans[0][1] : spans[1][0]]
    assert masked == output_piece(result).text
