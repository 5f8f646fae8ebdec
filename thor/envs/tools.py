"""Tools: how a call is recognised in the model's text, how it runs, how its result is rendered.

A tool turns the end of a model turn into a :class:`~thor.types.ToolCall`, executes it and renders
its :class:`~thor.types.ExecResult` back into the text. ``python`` (code in the episode's sandbox
session) is the default; a new tool is a small class registered in :data:`thor.TOOLS`, and any env
built from thor's parts can use it by name (see ``examples/``).

Example:
    >>> tool = PythonTool()
    >>> tool.find_call("Let me check.\\n```python\\nprint(1 + 1)\\n```").code
    'print(1 + 1)'
    >>> tool.find_call("The answer is \\\\boxed{2}.") is None
    True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

from pydantic import Field

from thor.config import ThorConfig
from thor.envs.sandbox.base import Session
from thor.registries import TOOLS
from thor.text.protocol import (
    CODE_STOP_STRINGS,
    OutputFormat,
    StopRule,
    find_code_block,
    format_output,
)
from thor.types import ExecResult, ToolCall

__all__ = ["PythonTool", "PythonToolConfig", "Tool", "ToolContext"]


class ToolContext:
    """What a tool may use while it runs: the episode's sandbox session (opened on first use).

    Args:
        session: a zero-argument callable returning the episode's session (the env opens it
            lazily, so tools that never need a sandbox never start one).
        timeout_s: the per-call wall-clock limit, or ``None`` for the sandbox's default.
    """

    def __init__(self, session: Callable[[], Session], timeout_s: float | None = None) -> None:
        self._session = session
        self.timeout_s = timeout_s

    def session(self) -> Session:
        return self._session()


class Tool(ABC):
    """A tool the model can call from its text.

    Subclasses set ``name`` and implement :meth:`find_call` and :meth:`run`; :meth:`render` and the
    stop rule have defaults. Errors in the call are data (an ExecResult with ``status="error"``).
    """

    name: ClassVar[str]
    stop_rule: ClassVar[StopRule] = StopRule()
    """Where a model turn that calls this tool ends: the rollout engine gives it to the policy."""

    def __init__(self, output_format: OutputFormat | None = None) -> None:
        self.output_format = output_format or OutputFormat()

    @abstractmethod
    def find_call(self, action: str) -> ToolCall | None:
        """The call this action ends with, or ``None`` when the action calls no tool."""

    @abstractmethod
    def run(self, call: ToolCall, ctx: ToolContext) -> ExecResult:
        """Execute ``call``. May raise :class:`~thor.errors.SandboxError` when infrastructure fails."""

    def render(self, result: ExecResult) -> str:
        """The text appended after the call (an ``output`` block by default)."""
        return format_output(result, self.output_format)

    def call_end(self, text: str) -> int | None:
        """Where a call completes in ``text`` (by the stop rule), or ``None``."""
        return self.stop_rule.end(text)


class PythonToolConfig(ThorConfig):
    """The python tool: code blocks run in the episode's persistent sandbox session."""

    run_unclosed: bool = Field(
        False, description="Also run an unclosed trailing block (the model stopped mid-code)"
    )
    output_format: OutputFormat = Field(default_factory=OutputFormat)


class PythonTool(Tool):
    """Runs the ```` ```python ```` block an action ends with, in the episode's sandbox session."""

    name = "python"
    stop_rule = StopRule(stop=CODE_STOP_STRINGS, code_close=True)

    def __init__(self, config: PythonToolConfig | None = None) -> None:
        self.config = config or PythonToolConfig()
        super().__init__(self.config.output_format)

    def find_call(self, action: str) -> ToolCall | None:
        block = find_code_block(action, allow_unclosed=self.config.run_unclosed)
        if block is None:
            return None  # an empty block is still a call: it prints nothing, so it fails
        return ToolCall(tool=self.name, code=block.code)

    def run(self, call: ToolCall, ctx: ToolContext) -> ExecResult:
        return ctx.session().run(call.code, timeout_s=ctx.timeout_s)


TOOLS.register("python", config=PythonToolConfig, factory=PythonTool)
