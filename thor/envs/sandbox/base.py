"""The execution contract: a :class:`Sandbox` opens :class:`Session` s; a session runs cells.

A session is one persistent interpreter for one episode: variables and imports carry across
cells. ``fork()`` branches it (the child sees the parent's state, random generators included; the
parent is unchanged; no cell is replayed), which is what self-correction and step-level RL build
on; ``fork(reseed=True)`` gives the branch fresh random seeds instead, for diverse continuations.

Errors in the code are data (``ExecResult.status``); a broken sandbox raises
:class:`~thor.errors.SandboxError`. Whoever opens or forks a session closes it (sessions are also
context managers).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from thor.types import ExecResult

__all__ = ["Sandbox", "Session"]


@runtime_checkable
class Session(Protocol):
    """One persistent interpreter, private to one episode (or one branch of it)."""

    def run(self, code: str, *, timeout_s: float | None = None) -> ExecResult:
        """Run one cell; ``timeout_s`` overrides the sandbox's per-cell wall-clock limit."""
        ...

    def fork(self, *, reseed: bool = False) -> Session:
        """Branch this session: a new, independent session with a copy of the current state.

        ``reseed``: fresh seeds for the branch's random generators instead of its parent's state.
        """
        ...

    def close(self) -> None:
        """End the session and everything it started (idempotent)."""
        ...

    @property
    def closed(self) -> bool: ...


@runtime_checkable
class Sandbox(Protocol):
    """A source of sessions (a pool of pre-started interpreters, or a remote service)."""

    def open(self) -> Session:
        """A fresh session with an empty namespace (numpy and sympy importable, maybe pre-imported)."""
        ...

    def close(self) -> None:
        """Close every session and release the sandbox's processes (idempotent)."""
        ...
