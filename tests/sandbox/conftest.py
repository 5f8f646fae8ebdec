"""Fixtures of the sandbox tests: isolation is required where CI requires it, skipped elsewhere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sandbox_helpers import require_isolation

from thor.envs.sandbox import LocalSandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[LocalSandbox]:
    """An isolated sandbox shared by one test module (sessions are cheap, templates are not)."""
    require_isolation()
    sb = LocalSandbox({"limits": {"timeout_s": 10}, "pool_size": 2})
    yield sb
    sb.close()
