r"""Text helpers of TIRGen: a tool-integrated text built from pieces, fences parsed robustly.

A TIRGen solution is a list of :class:`Piece` objects: the actor's text, the critic's code blocks
(written as thor's protocol writes them: ```` ```python\ncode\n``` ````) and the real tool outputs
(``\n`` + :func:`thor.text.protocol.format_output`, exactly the observation
:class:`~thor.envs.tir.TIREnv` appends). Joined, they are the completion; the pieces that are not
tool outputs are the model-written spans a trainer keeps in the loss.

:func:`split_fenced` reads what a critic wrote into text and code parts, repairing what models get
wrong (unclosed, nested or inline fences, predicted ```` ```output ```` blocks, untagged blocks).

Example:
    >>> parts, notes = split_fenced("Square it.\n```python\nprint(12 ** 2)\n```\n```output\n144\n```\n")
    >>> [(p.kind, p.text) for p in parts], notes
    ([('text', 'Square it.\n'), ('code', 'print(12 ** 2)')], ['predicted_output_dropped'])
    >>> same_text("a  b\nc", "a b c"), same_text("a b", "a c")
    (True, False)
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from thor.text.protocol import OutputFormat, format_output
from thor.types import ExecResult

__all__ = [
    "Part",
    "Piece",
    "code_piece",
    "join_pieces",
    "model_spans",
    "normalize_ws",
    "output_piece",
    "same_text",
    "snap_window",
    "split_fenced",
    "text_of_parts",
]


class Part(BaseModel):
    """A part of a critic's rewrite: step text, or a python block's code (fences removed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["text", "code"]
    text: str


class Piece(BaseModel):
    """A piece of a TIR completion: actor text, a python block, or a tool output (not trained on)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["text", "code", "output"]
    text: str


def normalize_ws(text: str) -> str:
    """``text`` with every whitespace character removed (the verbatim check ignores whitespace)."""
    return "".join(ch for ch in text if not ch.isspace())


def same_text(a: str, b: str) -> bool:
    """Whether two texts are equal up to whitespace."""
    return normalize_ws(a) == normalize_ws(b)


def text_of_parts(parts: Sequence[Part]) -> str:
    """The non-code text of a rewrite: its text parts joined."""
    return "".join(p.text for p in parts if p.kind == "text")


def code_piece(code: str) -> Piece:
    """A python block as the protocol writes it (the model stops right after the closing fence)."""
    return Piece(kind="code", text=f"```python\n{code.strip(chr(10))}\n```")


def output_piece(result: ExecResult, fmt: OutputFormat | None = None) -> Piece:
    """The observation after a code piece: a newline, then the rendered ```` ```output ```` block."""
    return Piece(kind="output", text="\n" + format_output(result, fmt))


def join_pieces(pieces: Sequence[Piece]) -> str:
    return "".join(p.text for p in pieces)


def model_spans(pieces: Sequence[Piece]) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of model-written text (every piece but tool outputs), merged."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for p in pieces:
        end = pos + len(p.text)
        if p.kind != "output" and end > pos:
            if spans and spans[-1][1] == pos:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((pos, end))
        pos = end
    return spans


def snap_window(text: str) -> str:
    """The window cut back to its last newline (kept); the whole text when it has no newline."""
    cut = text.rfind("\n")
    return text if cut < 0 else text[: cut + 1]


# -- parsing what a critic wrote --------------------------------------------------------------

_FENCE_LINE = re.compile(r"^[ \t]*(`{3,})[ \t]*([A-Za-z0-9_+.-]*)[ \t]*\r?\n?$")
_INLINE_OPEN = re.compile(r"`{3,}[ \t]*(python3|python|py)[ \t]*\r?\n?$", re.IGNORECASE)
_PY = ("python", "python3", "py")


def _looks_like_python(code: str) -> bool:
    if "print(" not in code:
        return False
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


class _Splitter:
    """Line-based fence reader; see :func:`split_fenced`."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.notes: list[str] = []
        self.text: list[str] = []
        self.body: list[str] = []
        self.kind: str | None = None  # None outside a block; else python | output | bare | other
        self.opener = ""

    def note(self, what: str) -> None:
        if what not in self.notes:
            self.notes.append(what)

    def flush_text(self) -> None:
        if self.text:
            self.parts.append(Part(kind="text", text="".join(self.text)))
            self.text = []

    def open(self, kind: str, opener: str) -> None:
        self.flush_text()
        self.kind, self.opener, self.body = kind, opener, []

    def close(self, closer: str) -> None:
        body = "".join(self.body)
        code = body.rstrip("\n").rstrip("\r")
        if self.kind == "output":
            self.note("predicted_output_dropped")
        elif self.kind == "python" or (self.kind == "bare" and _looks_like_python(code)):
            if self.kind == "bare":
                self.note("untagged_block_read_as_python")
            if code.strip():
                self.parts.append(Part(kind="code", text=code))
            else:
                self.note("empty_block_dropped")
        else:  # another language, or an untagged block that is not code: it stays text
            self.text.append(self.opener + body + closer)
        self.kind, self.body = None, []

    def line(self, line: str) -> None:
        fence = _FENCE_LINE.match(line)
        if self.kind is None:
            inline = _INLINE_OPEN.search(line) if fence is None else None
            if fence is not None:
                lang = fence.group(2).lower()
                kinds = {"": "bare", "output": "output"} | dict.fromkeys(_PY, "python")
                kind = kinds.get(lang, "other")
                self.open(kind, line)
            elif inline is not None:
                self.note("inline_fence")
                self.text.append(line[: inline.start()])
                self.open("python", line[inline.start() :])
            else:
                self.text.append(line)
            return
        if fence is not None and not fence.group(2):
            self.close(line)
        elif fence is not None and self.kind == "python" and fence.group(2).lower() in _PY:
            self.note("nested_fence")  # a second opening fence inside a block: skip it
        elif fence is not None and self.kind == "python" and fence.group(2).lower() == "output":
            self.note("unclosed_fence")  # the code ran straight into a predicted output
            self.close("")
            self.open("output", line)
        elif self.kind == "python" and line.rstrip().endswith("```"):
            self.note("inline_fence")
            self.body.append(line.rstrip()[:-3].rstrip("`"))
            self.close("")
        else:
            self.body.append(line)

    def finish(self) -> tuple[list[Part], list[str]]:
        if self.kind is not None:
            self.note("unclosed_fence")
            self.close("")
        self.flush_text()
        merged: list[Part] = []
        for p in self.parts:  # a block that stayed text splits the text around it: join it again
            if merged and p.kind == "text" and merged[-1].kind == "text":
                merged[-1] = Part(kind="text", text=merged[-1].text + p.text)
            else:
                merged.append(p)
        return merged, self.notes


def split_fenced(text: str) -> tuple[list[Part], list[str]]:
    """Split a critic's rewrite into text and python-code parts, repairing malformed fences.

    - a ```` ```python ```` / ```` ```py ```` block becomes a code part (an empty one is dropped);
    - a ```` ```output ```` block is dropped (the critic's prediction; the real output replaces it);
    - an untagged block is code when it parses as python and prints, else it stays text;
    - a block in another language stays text, fences included;
    - repairs: an unclosed block is closed at the end (or at a following ```` ```output ````), a
      second opening fence inside a block is skipped, a fence opened mid-line or closed at the end
      of a code line is accepted.

    Returns:
        The parts, and notes naming each repair made (``"nested_fence"``, ``"unclosed_fence"``...).
    """
    if not isinstance(text, str):
        return [], ["not_text"]
    s = _Splitter()
    for line in text.splitlines(keepends=True):
        s.line(line)
    return s.finish()
