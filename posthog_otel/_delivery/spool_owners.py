"""Owner locks: who is alive in a spool directory, and the housekeeping of those who are not.

A claim's owner is alive while it holds the lock on its ``owner-<owner>.lock``; the kernel
releases that lock when the process dies however it dies, so the next sender puts its batches
back. No pid is ever trusted (pid 1 is always alive). The files a dead owner left (its owner
file, its half-written temporaries) are removed; an empty directory can be removed by its last
user.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

from . import filelock as _filelock
from .spool_files import _NOFOLLOW, _OWNER_LOCK, _TEMPORARY, SpoolFiles, SpoolUnavailable, _process, _unlink

#: Seconds between two sweeps of the owner files of processes that ended.
OWNER_SWEEP_INTERVAL = 60.0


class OwnerLocks:
    """This process's owner lock in one spool directory, and the liveness of the others'."""

    def __init__(self, files: SpoolFiles) -> None:
        self._files = files
        self.directory = files.directory
        self.next_sweep = 0.0

    def owner(self) -> str:
        """Our owner token, its lock file created and held (claims need a live owner)."""
        process = _process.current()
        with process.lock:
            key = str(self.directory)
            if key not in process.owner_locks:
                process.owner_locks[key] = self._hold_owner_lock(self.directory / ("owner-%s.lock" % process.token))
        return process.token

    def _hold_owner_lock(self, path: Path) -> int:
        """Create and lock our owner file. Another process's sweep may remove a file nobody
        holds between its creation and our lock: then the lock is on a file no longer there,
        and would say nothing; so it is checked to be the one at ``path``, and made again."""
        for attempt in range(20):
            try:
                fd = os.open(str(path), _filelock.HOLD_MODE | os.O_CREAT | _NOFOLLOW, 0o600)
            except FileNotFoundError:  # the directory itself went (an empty one removed): again
                self._files.prepare()
                continue
            if _filelock.hold_shared(fd) and _same_file(fd, path):
                return fd
            os.close(fd)
            time.sleep(0.001 * attempt)  # a sweep holds it for an instant
        raise SpoolUnavailable("cannot lock %s" % path)

    def sweep_owner_locks(self) -> None:
        """Remove the owner files of processes that ended (a short-lived script leaves one per
        run): any nobody holds a lock on. At start, then at most once a minute."""
        self.next_sweep = time.monotonic() + OWNER_SWEEP_INTERVAL
        self._sweep(_OWNER_LOCK, remove=False)  # checking an owner removes a dead one's file

    def alive(self, owner: str) -> bool:
        """Whether the process ``owner`` still holds its lock; a dead owner's file is removed."""
        if not re.fullmatch(r"[0-9a-f]{16}", owner):
            return False  # an old-style (pid) claim or a made-up one: nobody holds it
        path = self.directory / ("owner-%s.lock" % owner)
        try:
            fd = os.open(str(path), os.O_RDWR | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            return False
        except OSError:
            return True  # cannot tell (a read-only disk): leave its claims alone
        try:
            if not _filelock.try_lock(fd):
                return True
            _unlink(path)
            return False
        finally:
            os.close(fd)  # also releases the lock we may have taken

    def remove_if_empty(self, lock: threading.Lock) -> bool:
        """Remove the spool directory when it holds nothing but our own lock files (a gateway's
        project closed for good): True if removed. A sibling that has it open holds its owner
        file there, and one writing holds ``append.lock``: then it stays. ``lock`` is the
        spool's, which its own appends hold."""
        process = _process.current()
        key = str(self.directory)
        mine = {"append.lock", "owner-%s.lock" % process.token}
        with lock:
            try:
                if set(os.listdir(key)) - mine:
                    return False
                fd = os.open(str(self.directory / "append.lock"), os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
            except OSError:
                return False
            try:
                if not _filelock.try_lock(fd) or set(os.listdir(key)) - mine:
                    return False
                with process.lock:
                    held = process.owner_locks.pop(key, None)
                    if held is not None:
                        os.close(held)
                for name in mine:
                    _unlink(self.directory / name)
                try:
                    os.rmdir(key)
                except OSError:  # something arrived meanwhile: it stays, and works as before
                    return False
            finally:
                os.close(fd)
        process.claims.pop(key, None)
        return True

    def sweep_temporaries(self) -> None:
        """Temporary files of writers that died mid-write."""
        self._sweep(_TEMPORARY, remove=True)

    def _sweep(self, pattern: "re.Pattern[str]", remove: bool) -> None:
        """The entries ``pattern`` names after another process's token, whose owner has ended."""
        try:
            names = os.listdir(str(self.directory))
        except OSError:
            return
        me = _process.current().token
        for name in names:
            match = pattern.fullmatch(name)
            if match and match.group(1) != me and not self.alive(match.group(1)) and remove:
                _unlink(self.directory / name)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk, held = os.lstat(str(path)), os.fstat(fd)
    except OSError:
        return False
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)
