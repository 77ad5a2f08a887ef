"""A durable FIFO of PostHog events that could not be delivered promptly.

A spool directory (one per project key and host) holds:

    <key>-<writer>.json              a batch, ``{"events": [...]}`` in PostHog's shape
    <batch>.<owner>.claimed          a batch that a live sender is delivering
    owner-<owner>.lock               locked by the process <owner> for as long as it lives
    append.lock                      held while a new batch's key is chosen and written
    .tmp-<owner>-<n>                 a batch being written (renamed into place when complete)
    corrupt/                         what could not be read, kept for inspection

**Order.** A batch's key is one more than the largest key present, chosen under
``append.lock``, so keys follow the order batches reach the spool, across processes, and no
clock is read: a wall clock stepped back cannot reorder anything. Senders take the oldest
batches; when the oldest is claimed by a live sender, nobody may skip ahead of it.

**Claims.** A sender renames the batches it takes to ``<batch>.<owner>.claimed`` (rename is
atomic: one process gets each). A claim's owner is alive while it holds the lock on its
``owner-<owner>.lock``; the kernel releases that lock when the process dies however it dies,
so the next sender puts the batches back. No pid is ever trusted (pid 1 is always alive).

**Trust.** The directory must be a real directory owned by this user and closed to others
(its parent may not be writable by others without the sticky bit), or the spool is refused
and the exporter keeps data in memory. Entries are opened without following links, without
blocking (a FIFO cannot hang us), must be regular files of this user under a size cap and
parse as a batch; each event must look like one. Whatever fails is moved to ``corrupt/`` or
skipped, with a warning and a count, and delivery goes on behind it. Names that match
nothing are ignored.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import re
import secrets
import stat
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple, Union

from . import _filelock
from ._encoding import EncodedBatch
from ._log import count_drop, logger, warn_limited

#: An entry larger than this is not ours (we write at most one request, 5 MiB, plus one event).
MAX_ENTRY_BYTES = 16 * 1024 * 1024
#: How long ``append`` waits for another process's ``append.lock`` before writing without it.
APPEND_LOCK_WAIT = 2.0
#: Seconds between two sweeps of the owner files of processes that ended.
OWNER_SWEEP_INTERVAL = 60.0

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


class _Unreadable(Exception):
    """An entry that is not a batch we can send; the message says why."""


@dataclass(frozen=True)
class _Name:
    key: int
    name: str  # as on disk
    entry: str  # the batch's name without any claim suffix
    owner: Optional[str]  # who claimed it, None while unclaimed


@dataclass
class Depth:
    batches: int = 0
    bytes: int = 0
    oldest_age: float = 0.0


class Busy:
    """The oldest batch is being delivered by another live sender: wait for it."""


class NothingWaiting:
    """Nothing is waiting."""


BUSY = Busy()
NOTHING_WAITING = NothingWaiting()
_SKIPPED = object()  # an entry set aside (quarantined, empty) while claiming


class Claim:
    """Batches taken out of the spool: ``done()`` once delivered, else ``release()``."""

    def __init__(self, spool: "DiskSpool", names: List[str], batch: EncodedBatch) -> None:
        self.spool = spool
        self.names = names  # claimed names, oldest first
        self.batch = batch

    def done(self) -> None:
        """Delivered: remove the batches (later, if the disk refuses now)."""
        names, self.names = self.names, []
        self.spool._delivered(names)

    def release(self, remaining: Optional[EncodedBatch] = None) -> None:
        """Give the batches back, at the head of the spool; only ``remaining`` if given.
        Raises ``OSError`` if the disk refuses; the claim is then released later."""
        names, self.names = self.names, []
        self.spool._give_back(names, remaining)


Head = Union[Claim, Busy, NothingWaiting]


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


class DiskSpool:
    def __init__(self, directory: Path, max_bytes: int, max_age: float) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.max_age = max_age
        _prepare(self.directory)
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._last_key = 0
        self._warned_names: Set[str] = set()
        self._next_bounds_check = 0.0
        self._next_owner_sweep = 0.0
        self._sweep_owner_locks()

    @property
    def _active(self) -> Set[str]:
        return _process.claims_in(str(self.directory)).active

    @property
    def _undeleted(self) -> Set[str]:
        return _process.claims_in(str(self.directory)).undeleted

    def __repr__(self) -> str:
        return "DiskSpool(%s)" % self.directory

    def after_fork(self) -> None:
        """In a forked child: the parent's claims are the parent's; a lock held by one of its
        threads at fork time would stay held."""
        self._lock = threading.Lock()  # (the claims are per process: a child starts with none)

    def __str__(self) -> str:
        return str(self.directory)

    # --- writing ----------------------------------------------------------------------

    def append(self, batch: EncodedBatch, claimed: bool = False) -> Optional[Claim]:
        """Write ``batch`` behind everything present. With ``claimed``, it is written already
        claimed by this process (a batch we are delivering right now) and the claim returned."""
        if not batch.count:
            return None
        me = self._owner() if claimed else _process.current().token
        with self._lock:
            try:
                fd = os.open(str(self.directory / "append.lock"), os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
            except FileNotFoundError:  # the directory went (removed when empty, or by hand): made again
                _prepare(self.directory)
                fd = os.open(str(self.directory / "append.lock"), os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
            try:  # closing the descriptor releases the lock
                self._lock_appends(fd)
                key = max(self._largest_key(), self._last_key) + 1
                self._last_key = key
                entry = "%020d-%s.json" % (key, me)
                name = "%s.%s.claimed" % (entry, me) if claimed else entry
                self._write(name, batch)
            finally:
                os.close(fd)
            if claimed:
                self._active.add(name)
        self._maybe_enforce_bounds()
        return Claim(self, [name], batch) if claimed else None

    def _write(self, name: str, batch: EncodedBatch) -> None:
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

    def _lock_appends(self, fd: int) -> None:
        """Hold ``append.lock`` so that no two processes choose the same key; if another
        process holds it too long (a stopped process), write without it: order within reason."""
        deadline = time.monotonic() + APPEND_LOCK_WAIT
        while not _filelock.try_lock(fd):
            if time.monotonic() > deadline:
                warn_limited("spool_append_lock", "posthog_otel: spool %s: another process holds append.lock; "
                             "writing without it", self.directory)  # fmt: skip
                return
            time.sleep(0.005)

    # --- reading ----------------------------------------------------------------------

    def pending(self) -> bool:
        """True while any batch is waiting or being delivered (by any process)."""
        return bool(self._scan())

    def claim_head(self, max_bytes: int, max_events: int) -> Head:
        """Claim the oldest batches, up to ``max_bytes``/``max_events`` (always at least one).

        ``BUSY`` when the oldest is being delivered by a live sender (ourselves included),
        ``NOTHING_WAITING`` when nothing waits.
        """
        me = self._owner()
        taken: List[Tuple[str, EncodedBatch]] = []
        size = count = 0
        self.retry_removals()
        for found in self._scan():
            if found.owner == me and found.name in self._undeleted:
                continue  # delivered already: removed as soon as the disk lets us
            try:
                step = self._take(found, me, taken, size, count, max_bytes, max_events)
            except OSError:
                if not taken:
                    raise  # a read-only disk: nothing can be claimed, the caller waits
                break  # what is claimed already goes now; the rest waits
            if step is None:
                break
            if step is not _SKIPPED:
                taken.append(step)
                size += step[1].size
                count += step[1].count
        if taken:
            return Claim(self, [n for n, _ in taken], EncodedBatch.join([b for _, b in taken]))
        waiting = [f for f in self._scan() if not (f.owner == me and f.name in self._undeleted)]
        return BUSY if waiting else NOTHING_WAITING

    def _take(
        self, found: "_Name", me: str, taken: List[Any], size: int, count: int, max_bytes: int, max_events: int
    ) -> Optional[Any]:
        """Claim one batch: (claimed name, batch), ``_SKIPPED`` (set aside), or None to stop
        here (it is another live sender's, or the request is full). OSError from the disk."""
        name = found.name
        if found.owner is not None:
            if found.owner == me and name in self._active or found.owner != me and self._owner_alive(found.owner):
                return None
            if self._rename(name, found.entry) is None:  # its sender died, or let go: back in line
                return None
            name = found.entry
        if taken:
            try:
                on_disk = os.lstat(str(self.directory / name)).st_size
            except FileNotFoundError:
                return None
            if size + on_disk > max_bytes or count >= max_events:
                return None
        claimed = self._rename(name, "%s.%s.claimed" % (found.entry, me))
        if claimed is None:
            return None  # another sender was quicker
        self._active.add(claimed)
        try:
            batch = self._read(claimed)
        except _Unreadable as why:
            self._active.discard(claimed)
            self._quarantine(claimed, str(why))
            return _SKIPPED
        if not batch.count:
            self._active.discard(claimed)
            self._remove(claimed)
            return _SKIPPED
        return claimed, batch

    def retry_removals(self) -> bool:
        """Remove delivered batches the disk would not let us remove before (read-only, then
        writable again): at once, so that no sibling waits behind them. True while some remain."""
        for name in list(self._undeleted):
            if self._remove(name) or not os.path.lexists(str(self.directory / name)):
                self._undeleted.discard(name)
        return bool(self._undeleted)

    @property
    def has_undeleted(self) -> bool:
        return bool(self._undeleted)

    def _read(self, name: str) -> EncodedBatch:
        try:
            fd = os.open(str(self.directory / name), _OPEN_READ)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise _Unreadable("a symbolic link") from None
            raise _Unreadable("cannot be opened (%s)" % error.strerror) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _Unreadable("not a regular file")
            if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
                raise _Unreadable("owned by another user")
            if info.st_size > MAX_ENTRY_BYTES:
                raise _Unreadable("larger than %d bytes" % MAX_ENTRY_BYTES)
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError as error:
            raise _Unreadable("cannot be read (%s)" % error.strerror) from None
        finally:
            os.close(fd)
        claimed = _CLAIMED.fullmatch(name)
        return _parse(b"".join(chunks), claimed.group(1) if claimed else name)

    def depth(self) -> Depth:
        depth = Depth()
        now = time.time()
        for found in self._scan():
            try:
                info = os.lstat(str(self.directory / found.name))
            except OSError:
                continue
            depth.batches += 1
            depth.bytes += info.st_size
            depth.oldest_age = max(depth.oldest_age, now - info.st_mtime)
        return depth

    # --- bounds -----------------------------------------------------------------------

    def _maybe_enforce_bounds(self) -> None:
        now = time.monotonic()
        if now >= self._next_bounds_check:
            self._next_bounds_check = now + 1.0
            self.enforce_bounds()

    def enforce_bounds(self) -> None:
        """Drop the oldest unclaimed batches past the size or age limit; say how many."""
        sized = []
        for found in self._scan():
            try:
                info = os.lstat(str(self.directory / found.name))
            except OSError:
                continue
            sized.append((found, info.st_size, info.st_mtime))
        total = sum(size for _, size, _ in sized)
        now = time.time()
        dropped_batches = dropped_events = 0
        for found, size, mtime in sized:
            too_old = now - mtime > self.max_age
            if not too_old and total <= self.max_bytes:
                break
            if found.owner is not None:
                continue  # being delivered: not ours to drop
            events = self._count_events(found.name)
            if not self._remove(found.name):
                continue
            total -= size
            dropped_batches += 1
            dropped_events += events
        if dropped_batches:
            count_drop("spool_full_or_expired", dropped_events)
            logger.error(
                "posthog_otel: spool %s over its limits (%d bytes, %d s): dropped the %d oldest batch(es), "
                "%d event(s)",
                self.directory, self.max_bytes, self.max_age, dropped_batches, dropped_events,
            )  # fmt: skip
        self._sweep_temporaries()
        if time.monotonic() >= self._next_owner_sweep:
            self._sweep_owner_locks()

    def _count_events(self, name: str) -> int:
        try:
            return self._read(name).count
        except _Unreadable:
            return 0

    # --- internals ----------------------------------------------------------------------

    def _scan(self) -> List[_Name]:
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

    def _largest_key(self) -> int:
        names = self._scan()
        return names[-1].key if names else 0

    def _ignore(self, name: str) -> None:
        if name not in self._warned_names and len(self._warned_names) < 1000:
            self._warned_names.add(name)
            warn_limited("spool_foreign:%s" % self.directory, "posthog_otel: spool %s holds %r, which is not a "
                         "spool file; ignored", self.directory, name)  # fmt: skip

    def _owner(self) -> str:
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
                _prepare(self.directory)
                continue
            if _filelock.hold_shared(fd) and _same_file(fd, path):
                return fd
            os.close(fd)
            time.sleep(0.001 * attempt)  # a sweep holds it for an instant
        raise SpoolUnavailable("cannot lock %s" % path)

    def _sweep_owner_locks(self) -> None:
        """Remove the owner files of processes that ended (a short-lived script leaves one per
        run): any nobody holds a lock on. At start, then at most once a minute."""
        self._next_owner_sweep = time.monotonic() + OWNER_SWEEP_INTERVAL
        self._sweep(_OWNER_LOCK, remove=False)  # checking an owner removes a dead one's file

    def _owner_alive(self, owner: str) -> bool:
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

    def _rename(self, name: str, new: str) -> Optional[str]:
        try:
            os.rename(str(self.directory / name), str(self.directory / new))
        except FileNotFoundError:
            return None
        return new

    def _remove(self, name: str) -> bool:
        return _unlink(self.directory / name)

    def _delivered(self, names: List[str]) -> None:
        for name in names:
            self._active.discard(name)
            try:
                os.unlink(str(self.directory / name))
            except FileNotFoundError:
                pass
            except OSError:
                self._undeleted.add(name)  # removed at a later scan, never sent again

    def _give_back(self, names: List[str], remaining: Optional[EncodedBatch]) -> None:
        self._active.difference_update(names)  # whatever fails below is an orphan: released later
        if not names:
            return
        if remaining is not None:
            if not remaining.count:
                self._delivered(names)
                return
            self._delivered(names[1:])
            names = names[:1]
            self._write(names[0], remaining)  # still claimed by us while it is rewritten
        for name in names:
            claimed = _CLAIMED.fullmatch(name)
            if claimed:
                os.rename(str(self.directory / name), str(self.directory / claimed.group(1)))

    def _quarantine(self, name: str, why: str) -> None:
        corrupt = self.directory / "corrupt"
        claimed = _CLAIMED.fullmatch(name)
        try:
            try:
                os.mkdir(str(corrupt), 0o700)
            except FileExistsError:
                pass
            if not stat.S_ISDIR(os.lstat(str(corrupt)).st_mode):
                raise OSError("corrupt is not a directory")
            os.rename(str(self.directory / name), str(corrupt / (claimed.group(1) if claimed else name)))
            where = "moved to %s" % corrupt
        except OSError:
            where = "removed" if self._remove(name) else "left in place"
        count_drop("spool_corrupt")
        warn_limited(
            "spool_corrupt",
            "posthog_otel: spool file %s is not a batch we can send (%s); %s, delivery goes on",
            claimed.group(1) if claimed else name, why, where,
        )  # fmt: skip

    def remove_if_empty(self) -> bool:
        """Remove the spool directory when it holds nothing but our own lock files (a gateway's
        project closed for good): True if removed. A sibling that has it open holds its owner
        file there, and one writing holds ``append.lock``: then it stays."""
        process = _process.current()
        key = str(self.directory)
        mine = {"append.lock", "owner-%s.lock" % process.token}
        with self._lock:
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

    def _sweep_temporaries(self) -> None:
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
            if match and match.group(1) != me and not self._owner_alive(match.group(1)) and remove:
                _unlink(self.directory / name)


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


def _parse(data: bytes, name: str) -> EncodedBatch:
    """The batch in ``data``; ``_Unreadable`` whatever is wrong with it (nested too deep for
    the parser's recursion, too large for memory...): an entry must never wedge the spool."""
    try:
        return _parse_batch(data, name)
    except _Unreadable:
        raise
    except Exception as error:  # RecursionError (a file nested 100,000 deep), MemoryError...
        raise _Unreadable("cannot be parsed (%s)" % type(error).__name__) from None


def _parse_batch(data: bytes, name: str) -> EncodedBatch:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise _Unreadable("not JSON") from None
    events = document.get("events") if isinstance(document, dict) else None
    if not isinstance(events, list):
        raise _Unreadable("no list of events")
    valid = [e for e in events if _is_event(e)]
    if len(valid) != len(events):
        count_drop("spool_corrupt", len(events) - len(valid))
        warn_limited("spool_bad_events", "posthog_otel: spool file %s holds %d malformed event(s), not a batch we "
                     "can send as is; those events are skipped",
                     name, len(events) - len(valid))  # fmt: skip
    batch, too_large = EncodedBatch.encode(valid)
    if too_large:
        count_drop("too_large", len(too_large))
    return batch


def _is_event(event: Any) -> bool:
    """The shape every event we spool has; anything else cannot be sent as is."""
    return (
        isinstance(event, dict)
        and isinstance(event.get("event"), str) and bool(event["event"])
        and isinstance(event.get("distinct_id"), str) and bool(event["distinct_id"])
        and isinstance(event.get("uuid"), str)
        and isinstance(event.get("timestamp"), str)
        and isinstance(event.get("properties"), dict)
    )  # fmt: skip


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


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk, held = os.lstat(str(path)), os.fstat(fd)
    except OSError:
        return False
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _unlink(path: Path) -> bool:
    try:
        os.unlink(str(path))
    except FileNotFoundError:
        return False
    except OSError:
        return False
    return True
