"""A seccomp filter for sessions: no new namespaces, no rarely needed kernel interfaces.

Everything a math cell needs (threads, subprocesses, multiprocessing, files, sockets on its own
loopback) stays allowed. What is refused with EPERM: creating or entering namespaces (``unshare``,
``setns``, ``clone`` with ``CLONE_NEWUSER`` or any other new-namespace flag, which would hand an
unprivileged process a user namespace full of capabilities and the kernel surface behind it),
``io_uring``, ``bpf``, ``userfaultfd``, ``perf_event_open``, the kernel keyring, ``ptrace``, the
mount API, kernel modules and ``kexec``. ``clone3`` answers ENOSYS so that the C library falls back
to ``clone``, whose flags a filter can inspect. Installed after no-new-privileges; inherited by
every process of the session.
"""

from __future__ import annotations

import ctypes
import os
import platform

PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
EPERM, ENOSYS = 1, 38
LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
NEW_NAMESPACES = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET

# name: (x86_64, aarch64)
_BLOCKED = {
    "unshare": (272, 97), "setns": (308, 268), "ptrace": (101, 117), "bpf": (321, 280),
    "userfaultfd": (323, 282), "perf_event_open": (298, 241), "keyctl": (250, 219),
    "add_key": (248, 217), "request_key": (249, 218), "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426), "io_uring_register": (427, 427), "mount": (165, 40),
    "umount2": (166, 39), "pivot_root": (155, 41), "open_tree": (428, 428), "move_mount": (429, 429),
    "fsopen": (430, 430), "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433),
    "mount_setattr": (442, 442), "kexec_load": (246, 104), "init_module": (175, 105),
    "finit_module": (313, 273), "delete_module": (176, 106),
}  # fmt: skip
_ARCH = {
    "x86_64": (0xC000003E, 0, 56, 435),
    "aarch64": (0xC00000B7, 1, 220, 435),
}  # audit, column, clone, clone3


class _Insn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint),
    ]


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Insn))]


def supported() -> bool:
    return platform.machine() in _ARCH


def program() -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions for this machine's architecture."""
    audit, col, clone, clone3 = _ARCH[platform.machine()]
    deny = RET_ERRNO | EPERM
    prog = [
        (LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (JEQ_K, 1, 0, audit),
        (RET_K, 0, 0, deny),  # another ABI (x32, 32-bit): refuse everything
        (LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        (JGE_K, 0, 1, 0x40000000),
        (RET_K, 0, 0, deny),  # x32 system call numbers
        (JEQ_K, 0, 1, clone3),
        (RET_K, 0, 0, RET_ERRNO | ENOSYS),
        (JEQ_K, 0, 3, clone),
        (LD_W_ABS, 0, 0, 16),  # seccomp_data.args[0], low half: the clone flags
        (JSET_K, 0, 1, NEW_NAMESPACES),
        (RET_K, 0, 0, deny),
    ]
    blocked = sorted({nums[col] for nums in _BLOCKED.values()})
    checks = [(JEQ_K, len(blocked) - i, 0, nr) for i, nr in enumerate(blocked)]
    prog.append((LD_W_ABS, 0, 0, 0))  # reload nr (the clone branch may have loaded args[0])
    prog += checks
    prog.append((RET_K, 0, 0, RET_ALLOW))
    prog.append((RET_K, 0, 0, deny))
    return prog


_READY: list[tuple[_Prog, ctypes.Array[_Insn], ctypes.CDLL]] = []


def prepare() -> None:
    """Build the filter once (in the template, before it forks), so that installing is one call."""
    if _READY or not supported():
        return
    insns = program()
    arr = (_Insn * len(insns))(*(_Insn(*i) for i in insns))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    _READY.append((_Prog(len(insns), arr), arr, libc))


def install() -> bool:
    """Install the filter on this process (needs no-new-privileges); False if unsupported here."""
    prepare()
    if not _READY:
        return False
    prog, _arr, libc = _READY[0]
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: {os.strerror(err)}")
    return True
