"""The host's end of a sandbox socket: frames with deadlines, size caps and schema checks.

Model code runs in the process at the other end and can write anything to the socket, so every
byte that comes back is untrusted: each read has a deadline, each frame a size cap, each reply a
schema check, and nothing is ever unpickled. Any violation is a :class:`ChannelError`, which the
session turns into a dead session (never into a crash or a hang of the host).
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

__all__ = ["Channel", "ChannelClosed", "ChannelError", "ChannelTimeout", "Peer", "check_result"]


class ChannelError(Exception):
    """The other end broke the protocol (bad frame, bad JSON, wrong schema)."""


class ChannelClosed(ChannelError):
    """The other end closed the socket (or it broke)."""


class ChannelTimeout(ChannelError):
    """No complete frame before the deadline."""


class Peer:
    """Who wrote a frame, as the kernel vouches for it (SCM_CREDENTIALS, host pid namespace)."""

    __slots__ = ("gid", "pid", "uid")

    def __init__(self, pid: int, uid: int, gid: int) -> None:
        self.pid, self.uid, self.gid = pid, uid, gid

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

    @classmethod
    def pair(cls, max_frame: int) -> tuple[Channel, socket.socket]:
        """A new channel and the socket end to hand to the sandbox."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(mine, max_frame), theirs

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def send(self, obj: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
        """Send one frame (``fds`` as SCM_RIGHTS); a broken socket is :class:`ChannelClosed`."""
        data = encode(obj)
        try:
            self.sock.settimeout(None)
            if fds:
                anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
                data = data[self.sock.sendmsg([data], anc) :]
            if data:
                self.sock.sendall(data)
        except OSError as err:
            raise ChannelClosed(f"cannot write to the sandbox: {err}") from None

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
        space = socket.CMSG_SPACE(struct.calcsize("iII"))
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
                raise ChannelTimeout("the sandbox did not answer in time") from None
            except OSError as err:
                raise ChannelClosed(f"the sandbox's socket broke: {err}") from None
            if not chunk:
                raise ChannelClosed("the sandbox closed its socket")
            buf += chunk
        return bytes(buf), peer


def _peer(anc: list[tuple[int, int, bytes]]) -> Peer | None:
    found = None
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            for fd in array.array("i", data[:usable]):
                os.close(fd)  # nobody sends the host descriptors
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= 12:
            found = Peer(*struct.unpack("iII", data[:12]))
    return found


_RESULT_STATUS = ("ok", "error", "timeout")


def check_result(msg: dict[str, Any], max_text: int) -> dict[str, Any]:
    """Validate a ``result`` frame from a worker; raise :class:`ChannelError` if malformed.

    ``max_text`` bounds stdout and stderr (characters); the reason is cut to 2,000 characters.
    """
    status = msg.get("status")
    if status not in _RESULT_STATUS:
        raise ChannelError(f"bad result status {status!r:.40}")
    out: dict[str, Any] = {"status": status}
    for key in ("stdout", "stderr", "reason"):
        value = msg.get(key, "")
        if not isinstance(value, str):
            raise ChannelError(f"result field {key!r} is not a string")
        limit = max_text if key != "reason" else 2000
        if len(value) > limit:
            raise ChannelError(f"result field {key!r} has {len(value)} characters (limit {limit})")
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
    out["duration_s"] = max(0.0, float(duration))
    out["truncated"] = truncated
    return out
