"""The code that runs *inside* the sandbox: the template, the guardians and the session workers.

Standard library only, and no import of thor: inside the sandbox this package is bound read-only
at ``/.thor/_worker`` and loaded as ``_thor_worker`` (see :mod:`thor.envs.sandbox.isolation`), so it
must not depend on anything the sandbox does not see.

- :mod:`.wire`: length-prefixed JSON frames over Unix sockets, file-descriptor passing, and the few
  Linux system calls python 3.11 lacks (``unshare``, ``mount``, ``prctl``) through ctypes.
- :mod:`.zygote`: the template ("zygote"): imports numpy and sympy once, then forks one session per
  request, sets the session up (mount namespace, scratch tmpfs, limits, unprivileged uid) and
  splits it into a guardian and an interpreter.
- :mod:`.cells`: the interpreter's loop: runs cells in one persistent namespace, captures output at
  the file-descriptor level, enforces the soft time limits, and forks branches.
"""
