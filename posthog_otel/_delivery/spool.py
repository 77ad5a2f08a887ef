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

Here: the order and the claims (``DiskSpool``, ``Claim``). The files, their names and what is
refused: ``_spool_files``; reading an entry and setting it aside: ``_spool_entries``; owner
locks and the housekeeping of dead owners: ``_spool_owners``.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Set, Tuple, Union

from .._log import count_drop, logger, warn_limited
from . import filelock as _filelock
from .encoding import EncodedBatch
from .spool_entries import _Unreadable, count_events, quarantine, read_entry
from .spool_files import _CLAIMED, _NOFOLLOW, SpoolFiles, SpoolUnavailable, _Name, _process, spool_directory
from .spool_owners import OwnerLocks

__all__ = [
    "BUSY", "NOTHING_WAITING", "Busy", "Claim", "Depth", "DiskSpool", "Head", "NothingWaiting", "SpoolUnavailable",
    "spool_directory",
]  # fmt: skip

#: How long ``append`` waits for another process's ``append.lock`` before writing without it.
APPEND_LOCK_WAIT = 2.0


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


class DiskSpool:
    def __init__(self, directory: Path, max_bytes: int, max_age: float) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._files = SpoolFiles(self.directory)
        self._owners = OwnerLocks(self._files)
        self._lock = threading.Lock()
        self._last_key = 0
        self._next_bounds_check = 0.0
        self._owners.sweep_owner_locks()

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
                self._files.prepare()
                fd = os.open(str(self.directory / "append.lock"), os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
            try:  # closing the descriptor releases the lock
                self._lock_appends(fd)
                key = max(self._files.largest_key(), self._last_key) + 1
                self._last_key = key
                entry = "%020d-%s.json" % (key, me)
                name = "%s.%s.claimed" % (entry, me) if claimed else entry
                self._files.write(name, batch)
            finally:
                os.close(fd)
            if claimed:
                self._active.add(name)
        self._maybe_enforce_bounds()
        return Claim(self, [name], batch) if claimed else None

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
        return bool(self._files.scan())

    def claim_head(self, max_bytes: int, max_events: int) -> Head:
        """Claim the oldest batches, up to ``max_bytes``/``max_events`` (always at least one).

        ``BUSY`` when the oldest is being delivered by a live sender (ourselves included),
        ``NOTHING_WAITING`` when nothing waits.
        """
        me = self._owner()
        taken: List[Tuple[str, EncodedBatch]] = []
        size = count = 0
        self.retry_removals()
        for found in self._files.scan():
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
        waiting = [f for f in self._files.scan() if not (f.owner == me and f.name in self._undeleted)]
        return BUSY if waiting else NOTHING_WAITING

    def _take(
        self, found: "_Name", me: str, taken: List[Any], size: int, count: int, max_bytes: int, max_events: int
    ) -> Optional[Any]:
        """Claim one batch: (claimed name, batch), ``_SKIPPED`` (set aside), or None to stop
        here (it is another live sender's, or the request is full). OSError from the disk."""
        name = found.name
        if found.owner is not None:
            if found.owner == me and name in self._active or found.owner != me and self._owners.alive(found.owner):
                return None
            if self._files.rename(name, found.entry) is None:  # its sender died, or let go: back in line
                return None
            name = found.entry
        if taken:
            try:
                on_disk = os.lstat(str(self.directory / name)).st_size
            except FileNotFoundError:
                return None
            if size + on_disk > max_bytes or count >= max_events:
                return None
        claimed = self._files.rename(name, "%s.%s.claimed" % (found.entry, me))
        if claimed is None:
            return None  # another sender was quicker
        self._active.add(claimed)
        try:
            batch = read_entry(self.directory, claimed)
        except _Unreadable as why:
            self._active.discard(claimed)
            quarantine(self.directory, claimed, str(why))
            return _SKIPPED
        if not batch.count:
            self._active.discard(claimed)
            self._files.remove(claimed)
            return _SKIPPED
        return claimed, batch

    def retry_removals(self) -> bool:
        """Remove delivered batches the disk would not let us remove before (read-only, then
        writable again): at once, so that no sibling waits behind them. True while some remain."""
        for name in list(self._undeleted):
            if self._files.remove(name) or not os.path.lexists(str(self.directory / name)):
                self._undeleted.discard(name)
        return bool(self._undeleted)

    @property
    def has_undeleted(self) -> bool:
        return bool(self._undeleted)

    def depth(self) -> Depth:
        depth = Depth()
        now = time.time()
        for found in self._files.scan():
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
        for found in self._files.scan():
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
            events = count_events(self.directory, found.name)
            if not self._files.remove(found.name):
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
        self._owners.sweep_temporaries()
        if time.monotonic() >= self._owners.next_sweep:
            self._owners.sweep_owner_locks()

    # --- claims ---------------------------------------------------------------------

    def _owner(self) -> str:
        """Our owner token, its lock file created and held (claims need a live owner)."""
        return self._owners.owner()

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
            self._files.write(names[0], remaining)  # still claimed by us while it is rewritten
        for name in names:
            claimed = _CLAIMED.fullmatch(name)
            if claimed:
                os.rename(str(self.directory / name), str(self.directory / claimed.group(1)))

    def remove_if_empty(self) -> bool:
        """Remove the spool directory when it holds nothing but our own lock files (a gateway's
        project closed for good): True if removed."""
        return self._owners.remove_if_empty(self._lock)
