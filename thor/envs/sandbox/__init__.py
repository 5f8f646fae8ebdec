"""thor's execution layer: isolated, persistent, forkable python sessions, local or remote.

- :class:`LocalSandbox` / :class:`LocalSession`: sessions forked from a pre-started template,
  each family isolated by bubblewrap and a uid of its own (``SECURITY.md`` has the threat model).
- :class:`RemoteSandbox` / :class:`RemoteSession`: a client for the SandboxFusion HTTP API
  (stateless: a session replays its successful cells).
- :func:`serve`: the local sandbox behind the SandboxFusion API (``thor sandbox serve``).

Registered in :data:`thor.registries.SANDBOXES` as ``local`` and ``remote``.

Example:
    >>> from thor.registries import SANDBOXES
    >>> sorted(n for n in SANDBOXES.names() if n in ("local", "remote"))
    ['local', 'remote']
"""

from __future__ import annotations

from thor.envs.sandbox.base import Sandbox, Session
from thor.envs.sandbox.config import LocalSandboxConfig, RemoteSandboxConfig, SandboxLimits
from thor.envs.sandbox.isolation import isolation_problems
from thor.envs.sandbox.local import LocalSandbox, LocalSession
from thor.envs.sandbox.remote import RemoteSandbox, RemoteSession
from thor.registries import SANDBOXES

__all__ = [
    "LocalSandbox",
    "LocalSandboxConfig",
    "LocalSession",
    "RemoteSandbox",
    "RemoteSandboxConfig",
    "RemoteSession",
    "Sandbox",
    "SandboxLimits",
    "Session",
    "isolation_problems",
]

SANDBOXES.register("local", config=LocalSandboxConfig, factory=LocalSandbox)
SANDBOXES.register("remote", config=RemoteSandboxConfig, factory=RemoteSandbox)
