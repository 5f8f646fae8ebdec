"""The guardian: the tiny parent of every interpreter, which reports how the interpreter ended."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from typing import Any

from . import wire


def guard(pid: int, sock: socket.socket, cpu_cap: float) -> None:
    """Wait for the interpreter ``pid``, report how it ended on ``sock``, exit. Never returns.

    The guardian holds the session's socket but never reads it, and writes only once the
    interpreter is dead, so its report cannot interleave with the interpreter's frames. It runs
    as the session's user: model code can kill it (the session then goes on without death
    reports, and the host still kills and sweeps by uid).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    report: dict[str, Any] = {"type": "died", "signal": None, "code": None, "cpu_s": None}
    try:
        _pid, status, usage = os.wait4(pid, 0)
    except ChildProcessError:
        status, usage = None, None
    if status is not None and os.WIFSIGNALED(status):
        report["signal"] = os.WTERMSIG(status)
    elif status is not None and os.WIFEXITED(status):
        report["code"] = os.WEXITSTATUS(status)
    if usage is not None:
        report["cpu_s"] = usage.ru_utime + usage.ru_stime
        report["cpu_cap"] = cpu_cap
    with contextlib.suppress(OSError):  # nobody may listen any more: the host closed the session
        wire.send(sock, report)
    os._exit(0)
