"""Frames, descriptor passing and raw Linux system calls for the sandbox's worker side.

A frame is a 4-byte big-endian length followed by that many bytes of JSON (ASCII-only, so any
string, binary output and lone surrogates included, survives the trip). File descriptors travel
with the first bytes of a frame as ``SCM_RIGHTS``. The worker trusts the host; the host trusts
nothing that comes back (see :mod:`thor.envs.sandbox.channel`).
"""

from __future__ import annotations

import array
import ctypes
import fcntl
import json
import os
import socket
import struct
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME = 256 << 20  # the host caps code far below this; this only bounds a corrupt header

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWNET = 0x00020000, 0x08000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
CAPTURE_DIR = "/.thor/out"  # a session's tmpfs for captured output (bubblewrap makes the directory)
PR_SET_PDEATHSIG, PR_CAPBSET_DROP = 1, 24
PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 38, 36

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    """unshare(2) (python 3.11 has no ``os.unshare``)."""
    _check(_libc.unshare(flags), "unshare")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    """mount(2)."""
    enc = [None if v is None else v.encode() for v in (source, target, fstype, data)]
    _check(_libc.mount(enc[0], enc[1], enc[2], flags, enc[3]), f"mount {target}")


def prctl(option: int, arg2: int = 0) -> None:
    """prctl(2) with one argument."""
    _check(_libc.prctl(option, arg2, 0, 0, 0), f"prctl {option}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def clear_inheritable() -> None:
    """Empty the inheritable capability set (bubblewrap leaves its --cap-add ones there)."""
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capget")
    for d in data:
        d.inheritable = 0
    _check(_libc.capset(ctypes.byref(header), data), "capset")


_CAP_LAST: list[int] = []


def cap_last() -> int:
    """The highest capability number (read once: the template calls this before it forks)."""
    if not _CAP_LAST:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            _CAP_LAST.append(int(f.read()))
    return _CAP_LAST[0]


def drop_bounding_set() -> None:
    """Drop every capability from the bounding set (needs CAP_SETPCAP; call before setresuid)."""
    for cap in range(cap_last() + 1):
        prctl(PR_CAPBSET_DROP, cap)


def loopback_up() -> None:
    """Bring up ``lo`` in a fresh network namespace (a private loopback, nothing else)."""
    siocsifflags, iff_up, iff_loopback, iff_running = 0x8914, 0x1, 0x8, 0x40
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(
            s, siocsifflags, struct.pack("16sH22x", b"lo", iff_up | iff_loopback | iff_running)
        )


def encode(obj: dict[str, Any]) -> bytes:
    """One frame: header and ASCII JSON."""
    body = json.dumps(obj, separators=(",", ":")).encode("ascii")
    return HEADER.pack(len(body)) + body


def send(
    sock: socket.socket, obj: dict[str, Any], fds: tuple[int, ...] = (), creds: bool = False
) -> None:
    """Send one frame; ``fds`` ride along as SCM_RIGHTS, ``creds`` adds SCM_CREDENTIALS."""
    data = encode(obj)
    anc = []
    if fds:
        anc.append((socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes()))
    if creds:
        ucred = struct.pack("iII", os.getpid(), os.getuid(), os.getgid())
        anc.append((socket.SOL_SOCKET, socket.SCM_CREDENTIALS, ucred))
    if anc:
        sent = sock.sendmsg([data], anc)
        data = data[sent:]
    if data:
        sock.sendall(data)


def recv(sock: socket.socket, max_fds: int = 2) -> tuple[dict[str, Any], list[int]] | None:
    """Read one frame and the descriptors sent with it; ``None`` at end of stream.

    Received descriptors are close-on-exec.
    """
    fds: list[int] = []
    header = b""
    space = socket.CMSG_SPACE(max_fds * 4)
    while len(header) < HEADER.size:
        chunk, anc, _flags, _addr = sock.recvmsg(
            HEADER.size - len(header), space, socket.MSG_CMSG_CLOEXEC
        )
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(array.array("i", payload[:usable]))
        if not chunk:
            for fd in fds:
                os.close(fd)
            return None
        header += chunk
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    body = bytearray(size)
    view = memoryview(body)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            return None
        got += n
    return json.loads(body), fds
