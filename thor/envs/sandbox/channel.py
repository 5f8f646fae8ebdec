"""The host's end of a sandbox socket: frames with deadlines, size caps and schema checks.

Model code runs in the process at the other end and can write anything to the socket, so every
byte that comes back is untrusted: each read and each write has a deadline, each frame a size
cap, each reply a schema check (text must be encodable, numbers finite and bounded), and nothing
is ever unpickled. Any violation is a :class:`ChannelError`, which the session turns into a dead
session (never into a crash or a hang of the host). Who wrote a frame comes from the kernel
(``SCM_CREDENTIALS``, and a pidfd with ``SCM_PIDFD`` on Linux 6.5+), never from the frame.
"""

from __future__ import annotations

import array
import json
import math
import os
import socket
import struct
import time
from typing import Any

from thor.envs.sandbox._worker.wire import HEADER, encode

__all__ = [
    "Channel",
    "ChannelClosed",
    "ChannelError",
    "ChannelTimeout",
    "Peer",
    "check_result",
    "safe_text",
]

SO_PASSPIDFD, SCM_PIDFD = 76, 4  # Linux 6.5+ (python 3.11's socket module lacks the names)


class ChannelError(Exception):
    """The other end broke the protocol (bad frame, bad JSON, wrong schema)."""


class ChannelClosed(ChannelError):
    """The other end closed the socket (or it broke)."""


class ChannelTimeout(ChannelError):
    """No complete frame before the deadline."""


class Peer:
    """Who wrote a frame, as the kernel vouches for it (SCM_CREDENTIALS, host pid namespace).

    ``pidfd``: a pidfd on the writer (SCM_PIDFD, Linux 6.5+; -1 without), owned by whoever takes
    it with :meth:`take_pidfd`; :meth:`close` closes it if nobody did.
    """

    __slots__ = ("gid", "pid", "pidfd", "uid")

    def __init__(self, pid: int, uid: int, gid: int, pidfd: int = -1) -> None:
        self.pid, self.uid, self.gid, self.pidfd = pid, uid, gid, pidfd

    def take_pidfd(self) -> int:
        fd, self.pidfd = self.pidfd, -1
        return fd

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.take_pidfd())

    def __repr__(self) -> str:
        return f"Peer(pid={self.pid}, uid={self.uid})"


class Channel:
    """A stream socket carrying length-prefixed JSON frames.

    Args:
        sock: the host's end; ``SO_PASSCRED`` is set on it here, before the other end can write.
        max_frame: the largest frame accepted from the other end, in bytes.
    """

    def __init__(self, sock: socket.socket, max_frame: int) -> None:
        self.sock = sock
        self.max_frame = max_frame
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_PASSPIDFD, 1)
            self.pidfds = True
        except OSError:  # before Linux 6.5: the hello's pid is checked instead (procs.Handle)
            self.pidfds = False

    @classmethod
    def pair(cls, max_frame: int) -> tuple[Channel, socket.socket]:
        """A new channel and the socket end to hand to the sandbox."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(mine, max_frame), theirs

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def send(self, obj: dict[str, Any], fds: tuple[int, ...] = (), *, deadline: float) -> None:
        """Send one frame (``fds`` as SCM_RIGHTS) before ``deadline`` (``time.monotonic()``).

        A frame larger than the socket's buffer waits for the other end to read it: one that
        stops reading makes this :class:`ChannelTimeout` (the frame may then be cut: the caller
        must drop the channel); a broken socket is :class:`ChannelClosed`.
        """
        data = encode(obj)
        try:
            if fds:
                self._arm(deadline)
                anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
                data = data[self.sock.sendmsg([data], anc) :]
            if data:
                self._arm(deadline)
                self.sock.sendall(data)  # the timeout bounds the whole call (python 3.5+)
        except TimeoutError:
            raise ChannelTimeout("the sandbox did not take the request in time") from None
        except OSError as err:
            raise ChannelClosed(f"cannot write to the sandbox: {err}") from None

    def _arm(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)

    def recv(
        self, deadline: float, *, want_peer: bool = False
    ) -> tuple[dict[str, Any], Peer | None]:
        """Read one frame before ``deadline`` (``time.monotonic()``), with its writer if asked."""
        header, peer = self._read(HEADER.size, deadline, want_peer)
        (size,) = HEADER.unpack(header)
        if size > self.max_frame:
            raise ChannelError(f"the sandbox sent a frame of {size} bytes (limit {self.max_frame})")
        body, _ = self._read(size, deadline, False)
        try:
            obj = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            raise ChannelError(f"the sandbox sent invalid JSON: {err}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise ChannelError("the sandbox sent a frame that is not a typed JSON object")
        return obj, peer

    def _read(self, n: int, deadline: float, want_peer: bool) -> tuple[bytes, Peer | None]:
        buf = bytearray()
        peer: Peer | None = None
        space = socket.CMSG_SPACE(struct.calcsize("iII")) + socket.CMSG_SPACE(4)
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout("the sandbox did not answer in time")
            try:
                self.sock.settimeout(left)
                if want_peer and peer is None:
                    chunk, anc, _flags, _addr = self.sock.recvmsg(
                        n - len(buf), space, socket.MSG_CMSG_CLOEXEC
                    )
                    peer = _peer(anc)
                else:
                    chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            except TimeoutError:
                _drop(peer)
                raise ChannelTimeout("the sandbox did not answer in time") from None
            except OSError as err:
                _drop(peer)
                raise ChannelClosed(f"the sandbox's socket broke: {err}") from None
            if not chunk:
                _drop(peer)
                raise ChannelClosed("the sandbox closed its socket")
            buf += chunk
        return bytes(buf), peer


def _drop(peer: Peer | None) -> None:
    if peer is not None:
        peer.close()


def _peer(anc: list[tuple[int, int, bytes]]) -> Peer | None:
    found, pidfds = None, []
    for level, kind, data in anc:
        if level != socket.SOL_SOCKET:
            continue
        if kind in (socket.SCM_RIGHTS, SCM_PIDFD):
            usable = len(data) - len(data) % 4
            fds = list(array.array("i", data[:usable]))
            if kind == SCM_PIDFD:
                pidfds += fds
            else:
                for fd in fds:
                    os.close(fd)  # nobody sends the host descriptors
        elif kind == socket.SCM_CREDENTIALS and len(data) >= 12:
            found = Peer(*struct.unpack("iII", data[:12]))
    if found is not None and pidfds:
        found.pidfd = pidfds.pop(0)
    for fd in pidfds:
        os.close(fd)
    return found


_RESULT_STATUS = ("ok", "error", "timeout")


def safe_text(value: object, limit: int = 500) -> str:
    """``str(value)`` cut to ``limit`` characters and made encodable, for messages and logs."""
    return str(value)[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


def check_result(msg: dict[str, Any], max_text: int, elapsed: float) -> dict[str, Any]:
    """Validate a ``result`` frame from a worker; raise :class:`ChannelError` if malformed.

    ``max_text`` bounds stdout and stderr (characters); the reason is cut to 2,000 characters.
    Text must be encodable (a lone surrogate is refused: it would break whoever writes the result
    out). The duration cannot exceed ``elapsed``, the time the host measured.
    """
    status = msg.get("status")
    if status not in _RESULT_STATUS:
        raise ChannelError(f"bad result status {safe_text(repr(status), 40)}")
    out: dict[str, Any] = {"status": status}
    for key in ("stdout", "stderr", "reason"):
        value = msg.get(key, "")
        if not isinstance(value, str):
            raise ChannelError(f"result field {key!r} is not a string")
        limit = max_text if key != "reason" else 2000
        if len(value) > limit:
            raise ChannelError(f"result field {key!r} has {len(value)} characters (limit {limit})")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ChannelError(f"result field {key!r} holds text that cannot be encoded") from None
        out[key] = value
    duration = msg.get("duration_s", 0.0)
    if (
        not isinstance(duration, int | float)
        or isinstance(duration, bool)
        or not math.isfinite(duration)
    ):
        raise ChannelError("result field 'duration_s' is not a finite number")
    truncated = msg.get("truncated", False)
    if not isinstance(truncated, bool):
        raise ChannelError("result field 'truncated' is not a boolean")
    out["duration_s"] = min(max(0.0, float(duration)), max(0.0, elapsed))
    out["truncated"] = truncated
    return out
