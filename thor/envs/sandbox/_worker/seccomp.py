"""A seccomp filter for sessions: no new namespaces, only the socket families sessions need, no
kernel objects that escape the session's memory bound or leak across sessions.

Everything a math cell needs (threads, subprocesses, multiprocessing, files, sockets on its own
loopback, pipes and Unix sockets) stays allowed. What is refused:

- with EPERM: creating or entering namespaces (``unshare``, ``setns``, ``clone`` with
  ``CLONE_NEWUSER`` or any other new-namespace flag, which would hand an unprivileged process a
  user namespace full of capabilities and the kernel surface behind it), ``io_uring``, ``bpf``,
  ``userfaultfd``, ``perf_event_open``, the kernel keyring, ``ptrace``, the mount API, kernel
  modules, ``kexec`` and ``fanotify``;
- with EAFNOSUPPORT: every socket family but ``AF_UNIX``, ``AF_INET`` and ``AF_INET6`` (no
  ``AF_VSOCK``, which network namespaces do not separate, no netlink, packet, ``AF_ALG``...);
- with ENOSYS (the answer of a kernel built without them, so that libraries fall back): System V
  IPC and ``memfd_create`` / ``memfd_secret`` (memory outside the session's tmpfs and address-space
  bounds), ``flock`` (a lock on a shared read-only file would block other sessions and the host)
  and ``inotify`` (a side channel on other sessions' file accesses).

``clone3`` answers ENOSYS so that the C library falls back to ``clone``, whose flags a filter can
inspect. Installed after no-new-privileges; inherited by every process of the session.
"""

from __future__ import annotations

import ctypes
import os
import platform

PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
EPERM, ENOSYS, EAFNOSUPPORT = 1, 38, 97
LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
NEW_NAMESPACES = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
SOCKET_FAMILIES = (1, 2, 10)  # AF_UNIX, AF_INET, AF_INET6

# name: (x86_64, aarch64); None where the architecture has no such call
_EPERM: dict[str, tuple[int, int | None]] = {
    "unshare": (272, 97), "setns": (308, 268), "ptrace": (101, 117), "bpf": (321, 280),
    "userfaultfd": (323, 282), "perf_event_open": (298, 241), "keyctl": (250, 219),
    "add_key": (248, 217), "request_key": (249, 218), "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426), "io_uring_register": (427, 427), "mount": (165, 40),
    "umount2": (166, 39), "pivot_root": (155, 41), "open_tree": (428, 428), "move_mount": (429, 429),
    "fsopen": (430, 430), "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433),
    "mount_setattr": (442, 442), "kexec_load": (246, 104), "init_module": (175, 105),
    "finit_module": (313, 273), "delete_module": (176, 106), "fanotify_init": (300, 262),
    "fanotify_mark": (301, 263),
}  # fmt: skip
_ENOSYS: dict[str, tuple[int, int | None]] = {
    "shmget": (29, 194), "shmat": (30, 196), "shmctl": (31, 195), "shmdt": (67, 197),
    "semget": (64, 190), "semop": (65, 193), "semctl": (66, 191), "semtimedop": (220, 192),
    "msgget": (68, 186), "msgsnd": (69, 189), "msgrcv": (70, 188), "msgctl": (71, 187),
    "memfd_create": (319, 279), "memfd_secret": (447, 447), "flock": (73, 32),
    "inotify_init": (253, None), "inotify_init1": (294, 26), "inotify_add_watch": (254, 27),
}  # fmt: skip
_ARCH = {
    "x86_64": (0xC000003E, 0, 56, 435, (41, 53)),
    "aarch64": (0xC00000B7, 1, 220, 435, (198, 199)),
}  # audit, column, clone, clone3, (socket, socketpair)


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


Jump = int | str  # a relative offset, or a label resolved by _assemble


def _assemble(code: list[tuple[int, Jump, Jump, int] | str]) -> list[tuple[int, int, int, int]]:
    """Resolve labels (the strings in ``code``) into the relative jumps of classic BPF."""
    where: dict[str, int] = {}
    insns: list[tuple[int, Jump, Jump, int]] = []
    for item in code:
        if isinstance(item, str):
            where[item] = len(insns)
        else:
            insns.append(item)

    def rel(target: Jump, pos: int) -> int:
        off = target if isinstance(target, int) else where[target] - pos - 1
        if not 0 <= off <= 255:
            raise ValueError(f"seccomp: jump of {off} instructions")
        return off

    return [(op, rel(jt, i), rel(jf, i), k) for i, (op, jt, jf, k) in enumerate(insns)]


def program() -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions for this machine's architecture."""
    audit, col, clone, clone3, sockets = _ARCH[platform.machine()]
    code: list[tuple[int, Jump, Jump, int] | str] = [
        (LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (JEQ_K, 1, 0, audit),
        (RET_K, 0, 0, RET_ERRNO | EPERM),  # another ABI (x32, 32-bit): refuse everything
        (LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        (JGE_K, "eperm", 0, 0x40000000),  # x32 system call numbers
        (JEQ_K, "enosys", 0, clone3),
        (JEQ_K, "clone", 0, clone),
        *((JEQ_K, "socket", 0, nr) for nr in sockets),
    ]
    for label, table in (("eperm", _EPERM), ("enosys", _ENOSYS)):
        numbers = sorted({nr for nums in table.values() if (nr := nums[col]) is not None})
        code += [(JEQ_K, label, 0, nr) for nr in numbers]
    code += [(RET_K, 0, 0, RET_ALLOW), "clone", (LD_W_ABS, 0, 0, 16)]  # args[0], low half: flags
    code += [(JSET_K, "eperm", 0, NEW_NAMESPACES), (RET_K, 0, 0, RET_ALLOW), "socket"]
    code.append((LD_W_ABS, 0, 0, 16))  # args[0], low half: the socket's family
    code += [(JEQ_K, "allow", 0, family) for family in SOCKET_FAMILIES]
    code += [(RET_K, 0, 0, RET_ERRNO | EAFNOSUPPORT), "allow", (RET_K, 0, 0, RET_ALLOW)]
    code += ["eperm", (RET_K, 0, 0, RET_ERRNO | EPERM), "enosys", (RET_K, 0, 0, RET_ERRNO | ENOSYS)]
    return _assemble(code)


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
