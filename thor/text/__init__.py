"""The text protocol of tool-integrated reasoning: code fences, output blocks, ``\\boxed`` answers
and THOR's prompts.

This package is core: every other package may import it, and importing it loads neither gymnasium
nor any model code (an import-linter contract checks that).
"""

from __future__ import annotations

from thor.text.prompts import PROMPTS, PromptStyle, messages_for
from thor.text.protocol import (
    CODE_STOP_STRINGS,
    CodeBlock,
    OutputFormat,
    StopRule,
    code_close_end,
    extract_boxed,
    find_code_block,
    find_code_blocks,
    format_output,
    last_error_line,
    shorten,
)

__all__ = [
    "CODE_STOP_STRINGS",
    "PROMPTS",
    "CodeBlock",
    "OutputFormat",
    "PromptStyle",
    "StopRule",
    "code_close_end",
    "extract_boxed",
    "find_code_block",
    "find_code_blocks",
    "format_output",
    "last_error_line",
    "messages_for",
    "shorten",
]
