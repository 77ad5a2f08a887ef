"""File locks that the kernel releases when their holder dies.

The spool tells a live sender from a dead one by a lock, never by a pid: a pid is reused, and
in a container every application is pid 1, which is always "alive".

POSIX record locks (``lockf``) belong to the process, are not inherited by a forked child,
and vanish when the process exits or is killed. Their one trap: closing *any* descriptor of
the locked file releases the process's lock, so each lock file is opened once per process.
On Windows, ``msvcrt.locking`` gives the same guarantee.
"""

from __future__ import annotations

import errno
import os
import sys

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def hold_shared(fd: int) -> bool:
        return try_lock(fd)

    #: How a lock holder opens its file (Windows locks need write access).
    HOLD_MODE = os.O_RDWR

else:
    import fcntl

    def _lock_now(fd: int, kind: int) -> bool:
        """Take a ``kind`` lock on ``fd`` without waiting; False if another process holds one."""
        try:
            fcntl.lockf(fd, kind | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True

    def try_lock(fd: int) -> bool:
        """Take an exclusive lock on ``fd`` without waiting; False if another process holds it."""
        return _lock_now(fd, fcntl.LOCK_EX)

    def hold_shared(fd: int) -> bool:
        """A shared lock, which a descriptor opened read-only can hold: a process holding it
        keeps no file open for writing, so an administrator can still remount read-only."""
        return _lock_now(fd, fcntl.LOCK_SH)

    #: How a lock holder opens its file.
    HOLD_MODE = os.O_RDONLY
