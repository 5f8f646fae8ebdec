"""Isolation policy and the bubblewrap command line of the sandbox's template.

The template runs under bubblewrap, started by root *without* a user namespace, so that it is
root inside its own mount, pid, network, ipc and uts namespaces and can give every session a
real unprivileged uid of its own. The sandbox sees an allowlist of read-only paths only: the
system's libraries and executables, a few files of ``/etc`` (plus a generated ``passwd``,
``group``, ``hosts`` and ``hostname``), the interpreter's tree, the virtual environment's
site-packages and the worker's own code; never the project directory, caches or ``/``.

Example:
    >>> from thor.envs.sandbox.isolation import isolation_problems
    >>> isinstance(isolation_problems(), list)  # [] where bubblewrap and root are available
    True
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from thor.envs.sandbox.config import LocalSandboxConfig
from thor.errors import IsolationError

__all__ = [
    "ENV_REQUIRE",
    "UNPROTECTED_WARNING",
    "Launch",
    "bwrap_command",
    "isolation_problems",
    "launch_command",
    "resolve_isolation",
    "sandbox_env",
]

log = logging.getLogger("thor.sandbox")

ENV_REQUIRE = "THOR_REQUIRE_ISOLATION"
WORKER_DIR = Path(__file__).resolve().parent / "_worker"
INNER_WORKER_DIR = "/.thor/_worker"
CAPTURE_DIR = "/.thor/out"  # the sessions' output tmpfs (see _worker.wire.CAPTURE_DIR)

UNPROTECTED_WARNING = (
    "thor sandbox: require_isolation=False: model code runs UNPROTECTED, as your own user ({user}) "
    "with your filesystem, your network, your environment's files and your other processes in "
    "reach; only the time, CPU, memory, open-file, file-size and output limits apply (no process "
    "limit, no private /tmp). Use it for debugging only."
)

FIX = (
    "To fix it: {remedy}; or pass require_isolation=False (LocalSandboxConfig) to run model code "
    "unprotected (refused when THOR_REQUIRE_ISOLATION=1)."
)

_BOOT = (
    "import importlib.util,sys\n"
    "d=sys.argv[1]\n"
    "s=importlib.util.spec_from_file_location('_thor_worker',d+'/__init__.py',"
    "submodule_search_locations=[d])\n"
    "m=importlib.util.module_from_spec(s);sys.modules['_thor_worker']=m;s.loader.exec_module(m)\n"
    "from _thor_worker.zygote import main;main(sys.argv[2:])\n"
)

_ETC_FILES = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "alternatives",
    "mime.types", "protocols", "services", "os-release", "fonts",
)  # fmt: skip
_GENERATED_ETC = {
    "passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1 localhost\n::1 localhost\n",
    "hostname": "sandbox\n",
}


def sandbox_env(scratch: str = "/tmp") -> dict[str, str]:
    """The whole environment of the template (and so of every session): nothing of the host's."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": scratch,
        "TMPDIR": scratch,
        "LANG": "C.UTF-8",
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        # Python's objects in glibc's heap, which asks for transparent huge pages (glibc 2.35+,
        # THP "madvise" or "always"): a fork then copies a few dozen 2 MB entries instead of
        # ~12,000 page-table entries, half its cost here (benchmarks/sandbox.py). One arena:
        # each thread's own would reserve 64 MB of the address-space limit.
        "PYTHONMALLOC": "malloc",
        "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1",
    }


def isolation_problems(bwrap: str = "bwrap") -> list[str]:
    """What stops isolation from working here, each with its remedy ([] when nothing does)."""
    problems = []
    if sys.platform != "linux":
        problems.append(
            f"isolation needs Linux (this is {sys.platform}); run thor in a Linux container"
        )
        return problems
    if shutil.which(bwrap) is None:
        problems.append(
            f"bubblewrap ({bwrap!r}) is not installed: install it (apt-get install bubblewrap, "
            "dnf install bubblewrap, apk add bubblewrap) or set LocalSandboxConfig.bwrap to its path"
        )
    if os.geteuid() != 0:
        problems.append(
            "thor must run as root to give every session an unprivileged user of its own "
            f"(now uid {os.geteuid()}): run as root, e.g. in a container (docker run --privileged, "
            "or --cap-add SYS_ADMIN --security-opt seccomp=unconfined)"
        )
    return problems


def resolve_isolation(config: LocalSandboxConfig) -> bool:
    """Whether to isolate; raises :class:`IsolationError` where the policy forbids running at all.

    Isolation required and unavailable: error with the remedy. Isolation turned off while
    ``THOR_REQUIRE_ISOLATION=1``: error. Isolation turned off otherwise: a warning names what is
    unprotected, and the sandbox runs without it.
    """
    if not config.require_isolation:
        if os.environ.get(ENV_REQUIRE, "") not in ("", "0"):
            raise IsolationError(
                f"{ENV_REQUIRE}={os.environ[ENV_REQUIRE]} is set, so require_isolation=False is refused: "
                "model code must run isolated here (see `thor sandbox check`)"
            )
        log.warning(UNPROTECTED_WARNING.format(user=_user()))
        return False
    problems = isolation_problems(config.bwrap)
    if config.seccomp and platform.machine() not in ("x86_64", "aarch64"):
        problems.append(
            f"the seccomp filter supports x86_64 and aarch64, not {platform.machine()}: set seccomp=False"
        )
    if problems:
        remedy = "; ".join(problems)
        raise IsolationError(
            f"the sandbox cannot isolate model code here. {FIX.format(remedy=remedy)}"
        )
    return True


def _user() -> str:
    return f"uid {os.geteuid()}" + (" = root" if os.geteuid() == 0 else "")


@dataclass
class Launch:
    """How to start the template: argv, environment, descriptors to hand over.

    ``owned`` are the pipes this launch made (closed by :meth:`close_fds` once started);
    ``carry`` the entries of the sandbox's ``/tmp`` that hold bound host paths.
    """

    argv: list[str]
    env: dict[str, str]
    pass_fds: list[int] = field(default_factory=list)
    owned: list[int] = field(default_factory=list)
    carry: list[str] = field(default_factory=list)

    def close_fds(self) -> None:
        for fd in self.owned:
            os.close(fd)
        self.owned = []


def launch_command(config: LocalSandboxConfig, isolated: bool, ctl_fd: int) -> Launch:
    """The command that starts the template with its control socket on ``ctl_fd``."""
    import json

    worker = INNER_WORKER_DIR if isolated else str(WORKER_DIR)
    launch = bwrap_command(config, []) if isolated else Launch([], sandbox_env())
    payload = json.dumps(
        {
            "ctl_fd": ctl_fd,
            "isolated": isolated,
            "preimport": list(config.preimport),
            "warmup": config.warmup,
            "carry": launch.carry,
        }
    )
    # -s -P: the isolated mode's user-site and path rules; the environment is read (it is ours
    # alone: sandbox_env) for PYTHONMALLOC
    python = [sys.executable, "-s", "-P", "-B", "-c", _BOOT, worker, payload]
    launch.argv += python
    launch.pass_fds.append(ctl_fd)
    return launch


def bwrap_command(config: LocalSandboxConfig, command: list[str]) -> Launch:
    """``command`` under bubblewrap with the sandbox's namespaces, allowlist and environment.

    The caller passes ``pass_fds`` to the child and calls :meth:`Launch.close_fds` after it
    started (the generated ``/etc`` files travel through pipes).
    """
    launch = Launch([], {}, [])
    try:
        args = _bwrap_args(config, launch)
    except Exception:
        launch.close_fds()
        raise
    for key, value in sandbox_env().items():
        args += ["--setenv", key, value]
    launch.argv = [shutil.which(config.bwrap) or config.bwrap, *args, "--", *command]
    return launch


def _bwrap_args(config: LocalSandboxConfig, launch: Launch) -> list[str]:
    args = [
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]
    args += ["--hostname", "sandbox", "--new-session", "--clearenv", "--cap-drop", "ALL"]
    # no --die-with-parent: it follows the *thread* that started bubblewrap, and any thread may
    # open the first session; when the host goes, the template sees its control socket close
    # and kills every process of the sandbox's pid namespace (hence CAP_KILL)
    for cap in (
        "CAP_SYS_ADMIN",
        "CAP_SETUID",
        "CAP_SETGID",
        "CAP_SETPCAP",
        "CAP_NET_ADMIN",
        "CAP_KILL",
        "CAP_DAC_OVERRIDE",  # to carry bound paths into a session's own /tmp (mode 0700)
    ):
        args += ["--cap-add", cap]
    args += ["--ro-bind", "/usr", "/usr"]
    view = _View()
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
            view.links.add(top)
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
            view.bound.append(top)
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in _ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for name, text in _GENERATED_ETC.items():
        fd = _data_fd(text)
        launch.owned.append(fd)
        launch.pass_fds.append(fd)
        args += ["--perms", "0644", "--ro-bind-data", str(fd), f"/etc/{name}"]
    args += ["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    # read by glibc's malloc to decide on huge pages (see sandbox_env); settings, no secrets
    thp = "/sys/kernel/mm/transparent_hugepage"
    args += ["--ro-bind-try", thp, thp]
    for path in _python_paths():
        args += view.expose(path)
    for path in config.extra_ro_paths:
        real = os.path.abspath(path)
        if not os.path.exists(real):
            raise IsolationError(f"extra_ro_paths: {path!r} does not exist")
        if _under(real, ["/dev", "/proc"]):
            raise IsolationError(
                f"extra_ro_paths: {path!r} lies under /dev or /proc, which every session "
                "replaces with its own; show it from another place (e.g. /var/tmp or /opt)"
            )
        args += view.expose(real)
    args += view.parents(INNER_WORKER_DIR)
    args += ["--ro-bind", str(WORKER_DIR), INNER_WORKER_DIR, "--perms", "0755", "--dir"]
    args += [CAPTURE_DIR, "--chdir", "/tmp"]
    launch.carry = sorted(view.tmp_entries)
    return args


class _View:
    """The host paths the sandbox shows, each at its own path, symlinks included.

    A path is shown as the interpreter sees it (``sys.prefix`` may run through a symlinked
    ``.venv``, a python may live behind a symlink): every symlink on the way is recreated and the
    real directory or file at its end is bound read-only. Entries made under ``/tmp`` are
    recorded: sessions replace ``/tmp`` with their own and carry these entries over.
    """

    def __init__(self) -> None:
        self.bound: list[str] = ["/usr"]
        self.links: set[str] = set()
        self.made: set[str] = set()
        self.tmp_entries: set[str] = set()

    def expose(self, path: str) -> list[str]:
        args: list[str] = []
        path = os.path.normpath(path)
        for _ in range(40):  # symlinks followed at most
            if _under(path, self.bound):
                return args
            link = self._first_link(path)
            if link is None:
                self.bound.append(path)
                self._note(path)
                return [*args, *self.parents(path), "--ro-bind", path, path]
            target = os.readlink(link)
            if link not in self.links:
                self.links.add(link)
                self._note(link)
                args += [*self.parents(link), "--symlink", target, link]
            rest = os.path.relpath(path, link)
            path = os.path.normpath(os.path.join(os.path.dirname(link), target, rest))
        raise IsolationError(f"too many levels of symbolic links on the way to {path!r}")

    def _first_link(self, path: str) -> str | None:
        current = "/"
        for part in Path(path).parts[1:]:
            current = os.path.join(current, part)
            if _under(current, self.bound):
                return None
            if os.path.islink(current):
                return current
        return None

    def _note(self, path: str) -> None:
        parts = Path(path).parts
        if len(parts) > 2 and parts[1] == "tmp":
            self.tmp_entries.add(parts[2])

    def parents(self, path: str) -> list[str]:
        """``--dir`` (mode 0755) for every missing ancestor of ``path``: bwrap would make them
        0700, which the session's user could not traverse. Everything else stays hidden: an
        ancestor is an empty directory of the sandbox's own root, not the host's directory."""
        args: list[str] = []
        parts = Path(path).parts[1:-1]
        for i in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:i])
            if d in self.made or d in ("/usr", "/etc", "/tmp", "/proc", "/dev"):
                continue
            if _under(d, self.bound) or d in self.links:
                continue
            self.made.add(d)
            self._note(d)
            args += ["--perms", "0755", "--dir", d]
        return args


def _data_fd(text: str) -> int:
    read, write = os.pipe()
    try:
        os.write(write, text.encode())
    finally:
        os.close(write)
    return read


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _python_paths() -> list[str]:
    """What the interpreter reads, as it names it: its trees, then its files.

    The installation (``sys.base_prefix``), every site-packages directory, the virtual
    environment's ``pyvenv.cfg`` and the executable (with every symlink on its way).
    """
    paths = [sys.base_prefix, sys.base_exec_prefix, *site.getsitepackages()]
    if sys.prefix != sys.base_prefix:
        paths.append(os.path.join(sys.prefix, "pyvenv.cfg"))
    paths.append(sys.executable)
    return [p for p in dict.fromkeys(paths) if os.path.exists(p)]


def run_bwrap_version(bwrap: str) -> str | None:
    """``bwrap --version``, or None when it cannot run."""
    try:
        out = subprocess.run(
            [bwrap, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
