"""Helpers of the sandbox tests (a module of its own: conftest modules cannot be imported)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from thor.envs.sandbox import LocalSandbox, isolation_problems
from thor.envs.sandbox.procs import list_procs

LIGHT: dict[str, Any] = {"preimport": [], "warmup": "", "pool_size": 0}
"""A sandbox config that starts in a tenth of a second (no numpy or sympy preloaded)."""


def light(**overrides: Any) -> dict[str, Any]:
    """:data:`LIGHT` with some fields replaced."""
    return {**LIGHT, **overrides}


def require_isolation() -> None:
    """Skip when isolation cannot work here, unless THOR_REQUIRE_ISOLATION=1 (then fail)."""
    problems = isolation_problems()
    if not problems:
        return
    msg = "sandbox isolation unavailable: " + "; ".join(problems)
    if os.environ.get("THOR_REQUIRE_ISOLATION", "") not in ("", "0"):
        pytest.fail(msg + " (THOR_REQUIRE_ISOLATION=1 requires it)")
    pytest.skip(msg)


def procs_of(sandbox: LocalSandbox) -> list[int]:
    """Pids of live processes (host-wide) running as one of ``sandbox``'s session uids."""
    pool = sandbox._uids
    assert pool is not None
    return [p.pid for p in list_procs() if p.uid in pool]
