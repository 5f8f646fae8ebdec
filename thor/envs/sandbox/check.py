"""``thor sandbox check``: does isolation work here, and if not, why and what to do.

It checks the prerequisites (Linux, bubblewrap, root), then starts a real sandbox and probes it
from inside: the session's uid, what it can read and write, its environment, the processes it
sees, the network (a listener the check opens on the host's loopback) and the process limit.

Example:
    >>> from thor.envs.sandbox.check import check_sandbox
    >>> report = check_sandbox()  # doctest: +SKIP
    >>> report.ok, [c.name for c in report.checks if not c.ok]  # doctest: +SKIP
    (True, [])
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from dataclasses import dataclass, field
from typing import Any

from thor.envs.sandbox.config import LocalSandboxConfig
from thor.envs.sandbox.isolation import isolation_problems, run_bwrap_version, sandbox_env
from thor.errors import SandboxError

__all__ = ["Check", "CheckReport", "check_sandbox"]

_PROBE = """
import json, os, socket
out = {"uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd(), "env": sorted(os.environ)}
def can(fn):
    try:
        fn()
        return True
    except OSError:
        return False
try:
    open(SECRET).read()
    out["read_secret"] = "read"
except OSError as err:
    out["read_secret"] = err.strerror
out["see_host_root"] = sorted(os.listdir("/"))
out["see_host_file"] = os.path.exists(CANARY)
out["write_usr"] = can(lambda: open("/usr/.thor-check", "w").close())
out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
def connect():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=1)
    s.close()
out["connect"] = can(connect)
import ctypes
out["userns"] = ctypes.CDLL(None, use_errno=True).unshare(0x10000000) == 0
out["vsock"] = can(lambda: socket.socket(40, socket.SOCK_STREAM).close())
out["memfd"] = can(lambda: os.close(os.memfd_create("x")))
kids = []
try:
    for _ in range(LIMIT + 8):
        pid = os.fork()
        if pid == 0:
            import time
            time.sleep(30)
            os._exit(0)
        kids.append(pid)
except OSError:
    pass
out["forked"] = len(kids)
for pid in kids:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
print(json.dumps(out))
"""


@dataclass
class Check:
    """One finding: what was checked, whether it passed, the evidence.

    A check that is not ``required`` is a degradation (a warning), not a failure.
    """

    name: str
    ok: bool
    detail: str = ""
    required: bool = True


@dataclass
class CheckReport:
    """Whether isolated sessions work here, each check, and what to do when they do not."""

    ok: bool
    checks: list[Check] = field(default_factory=list)
    fix: str = ""

    def render(self) -> str:
        lines = [
            f"[{'ok' if c.ok else ('FAIL' if c.required else 'warn')}] {c.name}"
            + (f": {c.detail}" if c.detail else "")
            for c in self.checks
        ]
        verdict = "isolation works here" if self.ok else "isolation does NOT work here"
        lines.append(verdict + (f"\n{self.fix}" if self.fix else ""))
        return "\n".join(lines)


def check_sandbox(config: LocalSandboxConfig | dict[str, Any] | None = None) -> CheckReport:
    """Check prerequisites, then start an isolated sandbox and probe it from inside."""
    from thor.config import validate_config

    cfg = validate_config(LocalSandboxConfig, config if config is not None else {})
    cfg = cfg.model_copy(update={"require_isolation": True, "pool_size": 0})
    report = CheckReport(ok=False)
    version = run_bwrap_version(cfg.bwrap)
    report.checks.append(
        Check("bubblewrap installed", version is not None, version or f"{cfg.bwrap!r} not found")
    )
    report.checks.append(Check("running as root", os.geteuid() == 0, f"euid {os.geteuid()}"))
    problems = isolation_problems(cfg.bwrap)
    if problems:
        report.fix = "To fix: " + "; ".join(problems)
        return report
    try:
        _probe(cfg, report)
    except SandboxError as err:  # IsolationError included: bubblewrap refused to start
        report.checks.append(Check("sandbox starts", False, str(err)))
        report.fix = (
            "bubblewrap is installed and thor runs as root, but the sandbox did not start: in a "
            "container, allow namespaces and mounts (docker run --privileged, or --cap-add SYS_ADMIN "
            "--security-opt seccomp=unconfined --security-opt apparmor=unconfined)"
        )
        return report
    report.ok = all(c.ok for c in report.checks if c.required)
    if not report.ok:
        report.fix = "some protections failed (see above); do not run untrusted code here"
    return report


def _probe(cfg: LocalSandboxConfig, report: CheckReport) -> None:
    from thor.envs.sandbox.local import LocalSandbox

    canary = tempfile.NamedTemporaryFile(prefix="thor-check-")  # noqa: SIM115 (closed below)
    # shown read-only to the sandbox (not from /tmp: every session has its own /tmp)
    secret_dir = tempfile.TemporaryDirectory(prefix="thor-check-", dir=_shared_tmp())
    secret = os.path.join(secret_dir.name, "secret")
    with open(os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write("root only")
    os.chmod(secret_dir.name, 0o755)
    cfg = cfg.model_copy(update={"extra_ro_paths": [*cfg.extra_ro_paths, secret_dir.name]})
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    limit = cfg.limits.processes
    code = (
        _PROBE.replace("PORT", str(port))
        .replace("LIMIT", str(limit))
        .replace("CANARY", repr(canary.name))
        .replace("SECRET", repr(secret))
    )
    try:
        with LocalSandbox(cfg) as sandbox:
            report.checks.append(Check("sandbox starts", True, "template up"))
            bounded = sandbox.cgroups is not None
            report.checks.append(
                Check("session memory bounded (cgroup)", bounded, sandbox.memory_bound, False)
            )
            with sandbox.open() as one, sandbox.open() as two:
                result = one.run(code, timeout_s=30)
                other = two.run("import os; print(os.getuid())", timeout_s=30)
            if not result.ok:
                raise SandboxError(f"the probe failed: {result.reason}")
            got = json.loads(result.stdout)
            other_uid = int(other.stdout) if other.ok else -1
        try:
            conn, _ = listener.accept()
            conn.close()
            reached = True
        except TimeoutError:
            reached = False
    finally:
        listener.close()
        canary.close()
        secret_dir.cleanup()
    report.checks += _findings(got, other_uid, reached, limit)


def _findings(got: dict[str, Any], other_uid: int, reached: bool, limit: int) -> list[Check]:
    """The checks that the probe's answers (``got``) pass or fail."""
    uid, secret, forked = got["uid"], got["read_secret"], got["forked"]
    return [
        Check(
            "unprivileged user of its own",
            uid != 0 and uid != other_uid,
            f"uid {uid}, another session {other_uid}",
        ),
        Check(
            "root-only files unreadable",
            secret == "Permission denied",
            f"a root-owned 0600 file: {secret}",
        ),
        Check(
            "host files hidden",
            not got["see_host_file"],
            "sees / as: " + " ".join(got["see_host_root"]),
        ),
        Check("read-only system", not got["write_usr"], "/usr not writable"),
        Check("environment scrubbed", set(got["env"]) <= _ENV_OK, ", ".join(got["env"])),
        Check("own processes only", len(got["pids"]) <= 3, f"sees pids {got['pids'][:10]}"),
        Check(
            "no network", not got["connect"] and not reached, "host loopback listener unreachable"
        ),
        Check("process limit enforced", forked < limit, f"{forked} forks (limit {limit})"),
        Check("user namespaces refused (seccomp)", not got["userns"], "unshare(CLONE_NEWUSER)"),
        Check("socket families unix/inet only (seccomp)", not got["vsock"], "AF_VSOCK refused"),
        Check("memfds refused (seccomp)", not got["memfd"], "memfd_create"),
    ]


def _shared_tmp() -> str:
    for d in ("/var/tmp", "/opt", os.path.expanduser("~")):
        if os.path.isdir(d) and os.access(d, os.W_OK):
            return d
    raise SandboxError("no writable directory outside /tmp for the check's canary file")


_ENV_OK = {*sandbox_env(), "PWD"}  # thor's own variables, none of the host's
