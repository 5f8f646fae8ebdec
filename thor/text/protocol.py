"""The text protocol of tool-integrated reasoning (THOR-SPEC section 0), as pure, total functions.

The model writes reasoning and, to compute, a fenced block::

    ```python
    print(2 ** 10)
    ```

Generation stops at the closing fence; the code runs and its result is appended as::

    ```output
    1024
    ```

The final answer is the last ``\\boxed{...}``. Every function here is total: it accepts any string
(LaTeX, control characters, unbalanced braces, megabytes of text) and never raises.

Example:
    >>> block = find_code_block("Let me compute.\\n```python\\nprint(6*7)\\n```")
    >>> block.code, block.closed
    ('print(6*7)', True)
    >>> extract_boxed(r"so the answer is \\boxed{\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import Field

from thor.config import ThorConfig
from thor.types import ExecResult

__all__ = [
    "CODE_STOP_STRINGS",
    "CodeBlock",
    "OutputFormat",
    "StopRule",
    "code_close_end",
    "extract_boxed",
    "find_code_block",
    "find_code_blocks",
    "format_output",
    "last_error_line",
    "shorten",
]

CODE_LANGS = ("python", "py", "python3")


@dataclass(frozen=True)
class StopRule:
    """Where a model turn that calls a tool ends: what a policy is told to stop on.

    Attributes:
        stop: strings that end the turn (the string is kept in the turn).
        code_close: end the turn right after the closing fence of a python block.

    Example:
        >>> StopRule(stop=("</calc>",)).end("2+2 is <calc>2+2</calc> and more")
        23
        >>> StopRule(code_close=True).end("```python\\nprint(1)\\n```\\nrest")
        22
        >>> StopRule().end("anything") is None
        True
    """

    stop: tuple[str, ...] = ()
    code_close: bool = False

    def end(self, text: str) -> int | None:
        """Where the first call completes in ``text`` (the offset after it), or ``None``."""
        hits = [text.find(s) + len(s) for s in self.stop if s and s in text]
        if self.code_close:
            close = code_close_end(text)
            if close is not None:
                hits.append(close)
        return min(hits) if hits else None


# A fence tagged python opens a block (models sometimes open one mid-line, so no anchor).
_OPEN = re.compile(r"```[ \t]*(python3|python|py)[ \t]*(?:\r?\n|$)")
# Any fence at the start of a line closes the block that is open.
_CLOSE = re.compile(r"(?m)^[ \t]*```")

CODE_STOP_STRINGS: tuple[str, ...] = ("```output",)
"""Stop strings for servers that only understand strings. They are a fallback: a model that stops
writing after the closing fence is caught by :func:`code_close_end`, which thor's backends check
on the decoded text (a stop on a bare ``` would fire at the *opening* fence)."""


@dataclass(frozen=True)
class CodeBlock:
    """A fenced code block found in text.

    Attributes:
        code: the code between the fences (without the trailing newline before the closing fence).
        start: offset of the opening fence in the text.
        end: offset just past the closing fence (or the end of the text for an unclosed block).
        closed: whether a closing fence was found.
        lang: the language tag as written (``python``, ``py``...).
    """

    code: str
    start: int
    end: int
    closed: bool
    lang: str = "python"


def find_code_blocks(text: str) -> list[CodeBlock]:
    """Every python block in ``text``, in order; the last may be unclosed."""
    if not isinstance(text, str):
        return []
    blocks: list[CodeBlock] = []
    pos = 0
    while True:
        m = _OPEN.search(text, pos)
        if m is None:
            return blocks
        body_start = m.end()
        c = _CLOSE.search(text, body_start)
        if c is None:
            blocks.append(CodeBlock(text[body_start:], m.start(), len(text), False, m.group(1)))
            return blocks
        code = text[body_start : c.start()]
        if code.endswith("\n"):
            code = code[:-1]
        if code.endswith("\r"):
            code = code[:-1]
        end = c.end()
        blocks.append(CodeBlock(code, m.start(), end, True, m.group(1)))
        pos = max(end, pos + 1)


def find_code_block(text: str, *, allow_unclosed: bool = False) -> CodeBlock | None:
    """The block to run for an action: the last python block, if the action ends with it.

    An action ends with a block when nothing but whitespace follows its closing fence. An unclosed
    trailing block (the model stopped mid-code) is returned only with ``allow_unclosed=True``.
    """
    blocks = find_code_blocks(text)
    if not blocks:
        return None
    last = blocks[-1]
    if not last.closed:
        return last if allow_unclosed else None
    if text[last.end :].strip():
        return None
    return last


def code_close_end(text: str) -> int | None:
    """Offset just past the first closing fence of a python block in ``text``, else ``None``.

    This is the stop rule of a TIR action: generation ends when a python block closes. Backends
    call it on decoded text and keep the tokens up to the one that completes the fence.
    """
    if not isinstance(text, str):
        return None
    m = _OPEN.search(text)
    if m is None:
        return None
    c = _CLOSE.search(text, m.end())
    return None if c is None else c.end()


def extract_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (or ``\fbox{...}``, or ``\boxed 5``); ``None`` if none.

    Nested braces are matched; an unclosed last box is skipped in favour of an earlier closed one.
    Linear in the length of the text (one pass pairs every brace), whatever the text holds.
    """
    if not isinstance(text, str):
        return None
    boxes = list(_BOX.finditer(text))
    if not boxes:
        return None
    closing: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE.finditer(text, boxes[0].start()):
        ch = m.group(0)
        if ch == "{":
            stack.append(m.start())
        elif ch == "}" and stack:
            closing[stack.pop()] = m.start()
    for box in reversed(boxes):
        start = box.end()
        if box.group(1) == " ":
            word = re.match(r"[^\s$]+", text[start : start + 1000])
            if word:
                return word.group(0)
            continue
        end = closing.get(start - 1)
        if end is not None:
            return text[start:end].strip()
    return None


_BOX = re.compile(r"\\(?:boxed|fbox)\s*(\{| )")
_BRACE = re.compile(r"\\.|[{}]", re.DOTALL)


class OutputFormat(ThorConfig):
    """How a tool result is rendered back into the text (THOR-SPEC section 0 defaults)."""

    max_chars: int = Field(
        256, ge=1, description="Outputs of at least this many characters are cut"
    )
    head_chars: int = Field(128, ge=0)
    tail_chars: int = Field(128, ge=0)
    error_last_line_only: bool = Field(True, description="Reduce an error to its last stderr line")
    fence: str = "output"


def shorten(text: str, fmt: OutputFormat | None = None) -> str:
    """Cut ``text`` to its first ``head_chars`` + ``...`` + last ``tail_chars`` when too long."""
    fmt = fmt or OutputFormat()
    if len(text) < fmt.max_chars:
        return text
    tail = text[len(text) - fmt.tail_chars :] if fmt.tail_chars else ""
    return text[: fmt.head_chars] + "..." + tail


def last_error_line(stderr: str) -> str:
    """The last non-empty line of an error message (``ZeroDivisionError: division by zero``)."""
    for line in reversed(stderr.splitlines()):
        if line.strip():
            return line.strip()
    return ""


def _result_text(result: ExecResult, fmt: OutputFormat) -> str:
    if result.status == "ok":
        return result.stdout
    if result.status == "error":
        msg = last_error_line(result.stderr) or result.reason
        if not fmt.error_last_line_only:
            msg = (result.stdout + result.stderr) or result.reason
        return msg
    if result.status == "timeout":
        return f"TimeoutError: {result.reason or 'execution timed out'}"
    if result.status == "killed":
        return f"Error: {result.reason or 'the interpreter was killed'}"
    return f"SandboxError: {result.reason or 'the sandbox failed'}"


def format_output(result: ExecResult, fmt: OutputFormat | None = None) -> str:
    """Render a result as an ``output`` block, shaped as THOR-SPEC section 0 says.

    Example:
        >>> from thor.types import ExecResult
        >>> format_output(ExecResult(status="ok", stdout="42\\n"))
        '```output\\n42\\n```\\n'
        >>> format_output(ExecResult(status="error", stderr="Traceback...\\nZeroDivisionError: division by zero\\n"))
        '```output\\nZeroDivisionError: division by zero\\n```\\n'
    """
    fmt = fmt or OutputFormat()
    body = shorten(_result_text(result, fmt).rstrip("\n"), fmt)
    return f"```{fmt.fence}\n{body}\n```\n"
