"""The spool directory's files: their names, who we are in them, and what we refuse to trust.

Names carry a key (the order) and the owner token of the process that wrote or claimed them
(see ``_spool``'s docstring for the layout). The directory must be a real directory owned by
this user and closed to others, or it is refused (``SpoolUnavailable``); files are created
private (0600), never through a link. Names that match nothing are ignored, once said.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import secrets
import stat
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from .._log import warn_limited
from .encoding import EncodedBatch

_ENTRY = re.compile(r"(\d{1,20})-[0-9A-Za-z_-]{1,64}\.json")
_CLAIMED = re.compile(r"((\d{1,20})-[0-9A-Za-z_-]{1,64}\.json)\.([0-9A-Za-z_-]{1,64})\.claimed")
_OWNER_LOCK = re.compile(r"owner-([0-9a-f]{16})\.lock")
_TEMPORARY = re.compile(r"\.tmp-([0-9a-f]{16})-\d+")
_KNOWN = ("append.lock", "corrupt")

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_OPEN_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_OPEN_NEW = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)  # fmt: skip


class SpoolUnavailable(OSError):
    """The spool directory cannot be used safely or at all; the message says why."""


@dataclass(frozen=True)
class _Name:
    key: int
    name: str  # as on disk
    entry: str  # the batch's name without any claim suffix
    owner: Optional[str]  # who claimed it, None while unclaimed


class _Claims:
    """This process's claims in one spool directory, whichever ``DiskSpool`` made them (two
    exporters with the same key and host share a directory, and the owner token): held by a
    live ``Claim``, or delivered but not removed yet (the disk refused). Any other claim of
    ours is an orphan and goes back in line."""

    def __init__(self) -> None:
        self.active: Set[str] = set()
        self.undeleted: Set[str] = set()


class _Process:
    """This process's identity in spools: a random owner token, renewed in a forked child."""

    def __init__(self) -> None:
        self.pid = -1
        self.token = ""
        self.owner_locks: Dict[str, int] = {}  # spool directory -> descriptor of our locked owner file
        self.claims: Dict[str, _Claims] = {}  # spool directory -> this process's claims there
        self.lock = threading.Lock()

    def current(self) -> "_Process":
        pid = os.getpid()
        if pid != self.pid:  # first use, or a forked child: the parent's locks are not ours
            self.pid, self.token = pid, secrets.token_hex(8)
            for fd in self.owner_locks.values():
                try:
                    os.close(fd)  # closing an inherited descriptor releases only our own locks: none
                except OSError:
                    pass
            self.owner_locks = {}
            self.claims = {}
            self.lock = threading.Lock()
        return self

    def claims_in(self, directory: str) -> _Claims:
        claims = self.current().claims.get(directory)
        if claims is None:
            claims = self.claims.setdefault(directory, _Claims())
        return claims


_process = _Process()


class SpoolFiles:
    """One spool directory's entries: listed in order, written whole, renamed, removed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        _prepare(self.directory)
        self._counter = itertools.count()
        self._warned_names: Set[str] = set()

    def prepare(self) -> None:
        """Make the directory again (it went: removed when empty, or by hand), or refuse it."""
        _prepare(self.directory)

    def scan(self) -> List[_Name]:
        """Batches and claims, oldest first; names that match nothing are ignored (once said)."""
        try:
            names = os.listdir(str(self.directory))
        except OSError:
            return []
        found = []
        for name in names:
            claimed = _CLAIMED.fullmatch(name)
            if claimed:
                found.append(_Name(int(claimed.group(2)), name, claimed.group(1), claimed.group(3)))
                continue
            entry = _ENTRY.fullmatch(name)
            if entry:
                found.append(_Name(int(entry.group(1)), name, name, None))
            elif not (name in _KNOWN or _OWNER_LOCK.fullmatch(name) or _TEMPORARY.fullmatch(name)):
                self._ignore(name)
        found.sort(key=lambda f: (f.key, f.entry))
        return found

    def largest_key(self) -> int:
        names = self.scan()
        return names[-1].key if names else 0

    def _ignore(self, name: str) -> None:
        if name not in self._warned_names and len(self._warned_names) < 1000:
            self._warned_names.add(name)
            warn_limited("spool_foreign:%s" % self.directory, "posthog_otel: spool %s holds %r, which is not a "
                         "spool file; ignored", self.directory, name)  # fmt: skip

    def write(self, name: str, batch: EncodedBatch) -> None:
        """Write to a private temporary file, then rename into place: never half a batch."""
        data = b'{"events":[' + batch.body() + b"]}"
        temporary = self.directory / (".tmp-%s-%d" % (_process.current().token, next(self._counter)))
        fd = os.open(str(temporary), _OPEN_NEW, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(str(temporary), str(self.directory / name))
        except BaseException:
            _unlink(self.directory / temporary.name)
            raise

    def rename(self, name: str, new: str) -> Optional[str]:
        try:
            os.rename(str(self.directory / name), str(self.directory / new))
        except FileNotFoundError:
            return None
        return new

    def remove(self, name: str) -> bool:
        return _unlink(self.directory / name)


def spool_directory(settings: Any) -> Path:
    """``spool_dir`` or the user's state directory, then one folder per (key, host): a hash, never the key."""
    if settings.spool_dir:
        base = Path(settings.spool_dir)
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support" / "posthog-otel" / "spool"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home()) / "posthog-otel" / "spool"
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "posthog-otel" / "spool"
    digest = hashlib.sha256(("%s\0%s" % (settings.host, settings.api_key)).encode("utf-8")).hexdigest()[:16]
    return base / digest


def _prepare(directory: Path) -> None:
    """Create the directory, or refuse one that others could tamper with."""
    for _ in range(3):
        try:
            return _make_ready(directory)
        except FileNotFoundError:  # removed as we made it (an empty one, by its last user): again
            continue
    raise SpoolUnavailable("%s keeps disappearing" % directory)


def _make_ready(directory: Path) -> None:
    try:
        directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        parent = os.stat(str(directory.parent))
        if parent.st_mode & stat.S_IWOTH and not parent.st_mode & stat.S_ISVTX:
            raise SpoolUnavailable("%s is writable by other users" % directory.parent)
        if hasattr(os, "geteuid") and parent.st_uid not in (os.geteuid(), 0):
            # its owner could rename our directory away and put one of theirs in its place
            raise SpoolUnavailable("%s belongs to another user" % directory.parent)
        try:
            os.mkdir(str(directory), 0o700)
        except FileExistsError:
            pass
        info = os.lstat(str(directory))
        if stat.S_ISLNK(info.st_mode):
            raise SpoolUnavailable("%s is a symbolic link" % directory)
        if not stat.S_ISDIR(info.st_mode):
            raise SpoolUnavailable("%s is not a directory" % directory)
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
            raise SpoolUnavailable("%s belongs to another user" % directory)
        if info.st_mode & 0o077:
            os.chmod(str(directory), 0o700)
        probe = directory / (".tmp-%s-probe" % _process.current().token)
        os.close(os.open(str(probe), _OPEN_NEW, 0o600))  # raises when the directory is not writable
        _unlink(probe)
    except (SpoolUnavailable, FileNotFoundError):
        raise
    except OSError as error:
        raise SpoolUnavailable("%s: %s" % (directory, error.strerror or error)) from None


def _unlink(path: Path) -> bool:
    try:
        os.unlink(str(path))
    except FileNotFoundError:
        return False
    except OSError:
        return False
    return True
