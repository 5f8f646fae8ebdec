"""Configs of the sandboxes: limits, the local (isolated) sandbox and the remote client.

Example:
    >>> from thor.envs.sandbox.config import LocalSandboxConfig, SandboxLimits
    >>> cfg = LocalSandboxConfig(limits=SandboxLimits(timeout_s=5, memory_mb=1024))
    >>> cfg.limits.cell_cpu_s  # the per-cell CPU budget follows the wall-clock timeout by default
    5.0
    >>> cfg.require_isolation
    True
"""

from __future__ import annotations

from pydantic import Field, model_validator

from thor.config import ThorConfig

__all__ = ["LocalSandboxConfig", "RemoteSandboxConfig", "SandboxLimits"]


class SandboxLimits(ThorConfig):
    """Per-cell and per-session limits of a sandboxed interpreter.

    Per cell: ``timeout_s`` (wall clock), ``cpu_s`` (CPU), ``output_bytes`` (kept per stream),
    ``code_bytes``. Per session (every process of it, its forks included): ``session_memory_mb``
    (all its memory: processes, scratch, shared memory, captured output; a memory cgroup),
    ``memory_mb`` (address space of each process), ``processes``, ``open_files``, ``file_mb``
    (largest file, captured output included), ``scratch_mb`` (the private ``/tmp``, and as much
    again for ``/dev/shm``), ``session_cpu_s`` (CPU time of the interpreter, summed over its
    cells).
    """

    timeout_s: float = Field(30.0, gt=0, le=86400, description="Wall-clock limit of one cell")
    cpu_s: float | None = Field(
        None, gt=0, description="CPU limit of one cell (default: timeout_s)"
    )
    grace_s: float = Field(
        2.0, ge=0.1, description="After timeout_s + grace_s the host kills the session (hard limit)"
    )
    session_cpu_s: float = Field(600.0, ge=1, description="CPU limit of the interpreter, all cells")
    memory_mb: int = Field(2048, ge=64, description="Address space of each process (RLIMIT_AS)")
    session_memory_mb: int | None = Field(
        None,
        ge=64,
        description="All memory of a session and its forks (a memory cgroup); default: memory_mb",
    )
    processes: int = Field(64, ge=4, description="Processes and threads of the session's user")
    open_files: int = Field(256, ge=32, description="Open file descriptors per process")
    output_bytes: int = Field(
        65536, ge=256, description="Bytes of stdout/stderr kept (head + tail)"
    )
    file_mb: int = Field(
        16, ge=1, description="Largest file a cell may write, captured output included"
    )
    scratch_mb: int = Field(64, ge=1, description="Size of the private scratch tmpfs")
    code_bytes: int = Field(1 << 20, ge=1, description="Largest cell accepted")

    @property
    def cell_cpu_s(self) -> float:
        return float(self.cpu_s if self.cpu_s is not None else self.timeout_s)

    @property
    def family_memory_mb(self) -> int:
        """The memory bound of a session and its forks (``session_memory_mb`` or ``memory_mb``)."""
        return self.session_memory_mb if self.session_memory_mb is not None else self.memory_mb

    def worker_limits(self) -> dict[str, float | int]:
        """The limits the sandbox's worker enforces itself (sent with every new session)."""
        return {
            "session_cpu_s": self.session_cpu_s,
            "memory_mb": self.memory_mb,
            "processes": self.processes,
            "open_files": self.open_files,
            "output_bytes": self.output_bytes,
            "file_mb": self.file_mb,
            "scratch_mb": self.scratch_mb,
        }


class LocalSandboxConfig(ThorConfig):
    """Config of :class:`~thor.envs.sandbox.local.LocalSandbox`.

    ``require_isolation=False`` runs the same template and worker without bubblewrap and without
    a user of its own per session (a warning names what is then unprotected); it is refused when
    the environment variable ``THOR_REQUIRE_ISOLATION=1`` is set (CI sets it).
    """

    require_isolation: bool = Field(True, description="Refuse to run model code without isolation")
    limits: SandboxLimits = Field(default_factory=SandboxLimits)
    preimport: list[str] = Field(
        default_factory=lambda: ["numpy", "sympy"],
        description="Modules the template imports once, so that a session imports them instantly",
    )
    warmup: str = Field(
        "import sympy\nsympy.factor(sympy.sympify('x**2 - 1'))\n",
        description="Trusted code the template runs once after the imports, to fill lazy caches",
    )
    pool_size: int = Field(4, ge=0, le=64, description="Sessions kept started ahead of open()")
    loopback: bool = Field(
        False,
        description="Give each session a loopback interface of its own (about a millisecond per open)",
    )
    seccomp: bool = Field(
        True,
        description="Refuse new namespaces, socket families but unix/inet, io_uring, bpf, ptrace, SysV IPC, memfds, flock, inotify... to sessions (x86_64, aarch64)",
    )
    memory_cgroup: bool | None = Field(
        None,
        description="Bound each session's memory with a cgroup: None where one can be made (a warning says what is bounded where not), True requires it, False does without",
    )
    extra_ro_paths: list[str] = Field(
        default_factory=list, description="More host paths to show read-only inside the sandbox"
    )
    bwrap: str = Field("bwrap", description="The bubblewrap executable")
    start_timeout_s: float = Field(60.0, gt=0, description="Time allowed for the template to start")
    open_timeout_s: float = Field(30.0, gt=0, description="Time allowed for a session to say hello")


class RemoteSandboxConfig(ThorConfig):
    """Config of :class:`~thor.envs.sandbox.remote.RemoteSandbox` (a SandboxFusion server)."""

    url: str = Field(description="Base URL of the server, e.g. http://127.0.0.1:8080")
    token: str | None = Field(None, description="Sent as 'Authorization: Bearer <token>'")
    timeout_s: float = Field(30.0, gt=0, description="run_timeout of one cell")
    request_timeout_s: float = Field(
        30.0, gt=0, description="HTTP time allowed on top of the cell's"
    )
    retries: int = Field(3, ge=0, le=20, description="Retries of a failed request")
    backoff_s: float = Field(
        0.5, ge=0, description="First wait between retries (doubles each time)"
    )
    code_bytes: int = Field(1 << 20, ge=1, description="Largest cell (history replay included)")

    @model_validator(mode="after")
    def _check_url(self) -> RemoteSandboxConfig:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        return self
