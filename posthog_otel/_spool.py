"""A durable FIFO of PostHog events that could not be delivered yet.

One file per batch, named so that names sort by age:
``<time_ns:020d>-<pid>-<n:06d>.json``, written to a temporary name and renamed into
place (a reader never sees half a file). A sender *claims* a file by renaming it to
``<name>.<pid>.claimed``; rename is atomic, so among several processes sharing the
directory (gunicorn workers) exactly one gets it. Claims left by a process that died are
released on the next scan. Only the oldest file may be claimed, so batches leave in the
order they came, whichever process sends them.

Bounds: past ``max_bytes`` or ``max_age`` the oldest files are dropped, counted and
logged. A file that cannot be parsed is moved to ``corrupt/`` and reported.
The directory is created 0700 and files 0600.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional, Tuple

from ._log import count_drop, logger, warn_limited

SUFFIX = ".json"
CLAIMED = ".claimed"


@dataclass
class Claim:
    """A batch taken out of the spool: ``done()`` when delivered, else ``release()``."""

    spool: Any
    name: str
    events: List[Dict[str, Any]]

    def done(self) -> None:
        self.spool._finish(self, None)

    def release(self, remaining: Optional[List[Dict[str, Any]]] = None) -> None:
        """Put the batch back at the head of the spool; only ``remaining`` if given."""
        self.spool._finish(self, self.events if remaining is None else remaining)


@dataclass
class Depth:
    batches: int = 0
    bytes: int = 0
    oldest_age: float = 0.0


class DiskSpool:
    def __init__(self, directory: Path, max_bytes: int, max_age: float) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        probe = self.directory / (".probe-%d" % os.getpid())
        probe.write_bytes(b"")  # raises when the directory is not writable
        probe.unlink()
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "DiskSpool(%s)" % self.directory

    # --- writing ----------------------------------------------------------------------

    def append(self, events: List[Dict[str, Any]]) -> None:
        if not events:
            return
        with self._lock:
            name = "%020d-%d-%06d%s" % (time.time_ns(), os.getpid(), next(self._counter), SUFFIX)
        self._write(self.directory / name, events)
        self.enforce_bounds()

    def _write(self, path: Path, events: List[Dict[str, Any]]) -> None:
        """Write to a private temporary file, then rename over ``path``: never half a file."""
        data = json.dumps({"events": events}, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
        temporary = self.directory / (".%s.%d.tmp" % (path.name, os.getpid()))
        fd = os.open(str(temporary), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(str(temporary), str(path))
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    # --- reading ----------------------------------------------------------------------

    def pending(self) -> bool:
        """True while any batch is waiting or being sent (by any process)."""
        return bool(self._entries(include_claimed=True))

    def claim_oldest(self) -> Optional[Claim]:
        """Take the oldest batch, unless another sender holds it (order is kept)."""
        self._release_orphans()
        entries = self._entries(include_claimed=True)
        if not entries or entries[0].endswith(CLAIMED):
            return None
        name = entries[0]
        claimed = "%s.%d%s" % (name, os.getpid(), CLAIMED)
        try:
            os.rename(str(self.directory / name), str(self.directory / claimed))
        except FileNotFoundError:  # another process was quicker
            return None
        try:
            events = json.loads((self.directory / claimed).read_bytes())["events"]
            if not isinstance(events, list):
                raise ValueError("events is not a list")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
            self._quarantine(claimed, error)
            return self.claim_oldest()
        return Claim(self, claimed, events)

    def depth(self) -> Depth:
        depth = Depth()
        now = time.time_ns()
        for name in self._entries(include_claimed=True):
            try:
                depth.bytes += (self.directory / name).stat().st_size
            except FileNotFoundError:
                continue
            depth.batches += 1
            age = (now - _born(name)) / 1e9
            depth.oldest_age = max(depth.oldest_age, age)
        return depth

    def enforce_bounds(self) -> None:
        """Drop the oldest unclaimed batches past the size or age limit; say how many."""
        entries = [(n, self._size(n)) for n in self._entries(include_claimed=False)]
        total = sum(size for _, size in entries)
        now = time.time_ns()
        dropped_batches = dropped_events = 0
        for name, size in entries:
            too_old = (now - _born(name)) / 1e9 > self.max_age
            if not too_old and total <= self.max_bytes:
                break
            events = self._count_events(name)
            try:
                (self.directory / name).unlink()
            except FileNotFoundError:
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

    # --- internals ----------------------------------------------------------------------

    def _entries(self, include_claimed: bool) -> List[str]:
        try:
            names = os.listdir(str(self.directory))
        except FileNotFoundError:
            return []
        return sorted(
            n for n in names if not n.startswith(".") and (n.endswith(SUFFIX) or (include_claimed and n.endswith(CLAIMED)))
        )

    def _finish(self, claim: Claim, remaining: Optional[List[Dict[str, Any]]]) -> None:
        path = self.directory / claim.name
        if not remaining:
            path.unlink(missing_ok=True)
            return
        if len(remaining) != len(claim.events):  # part went through: keep only the rest
            self._write(path, remaining)
        os.rename(str(path), str(self.directory / _unclaimed(claim.name)))

    def _release_orphans(self) -> None:
        for name in self._entries(include_claimed=True):
            if not name.endswith(CLAIMED):
                continue
            pid = int(name[: -len(CLAIMED)].rsplit(".", 1)[1])
            if pid != os.getpid() and not _alive(pid):
                try:
                    os.rename(str(self.directory / name), str(self.directory / _unclaimed(name)))
                except FileNotFoundError:
                    pass

    def _quarantine(self, name: str, error: Exception) -> None:
        corrupt = self.directory / "corrupt"
        corrupt.mkdir(exist_ok=True, mode=0o700)
        os.rename(str(self.directory / name), str(corrupt / _unclaimed(name)))
        count_drop("spool_corrupt")
        logger.error(
            "posthog_otel: spool file %s could not be read (%s); moved to %s for inspection",
            _unclaimed(name), error, corrupt,
        )  # fmt: skip

    def _size(self, name: str) -> int:
        try:
            return (self.directory / name).stat().st_size
        except FileNotFoundError:
            return 0

    def _count_events(self, name: str) -> int:
        try:
            return len(json.loads((self.directory / name).read_bytes())["events"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0


class MemorySpool:
    """The same FIFO in memory, for when the disk cannot be written: survives outages, not exits."""

    def __init__(self, max_bytes: int, max_age: float) -> None:
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._batches: Deque[Tuple[float, int, List[Dict[str, Any]]]] = deque()
        self._claimed = False
        self._lock = threading.Lock()

    def append(self, events: List[Dict[str, Any]]) -> None:
        if events:
            size = len(json.dumps(events, default=str))
            with self._lock:
                self._batches.append((time.time(), size, events))
            self.enforce_bounds()

    def pending(self) -> bool:
        return bool(self._batches) or self._claimed

    def claim_oldest(self) -> Optional[Claim]:
        with self._lock:
            if self._claimed or not self._batches:
                return None
            self._claimed = True
            return Claim(self, "memory", self._batches[0][2])

    def _finish(self, claim: Claim, remaining: Optional[List[Dict[str, Any]]]) -> None:
        with self._lock:
            if self._batches:
                born, size, _ = self._batches.popleft()
                if remaining:
                    self._batches.appendleft((born, size, remaining))
            self._claimed = False

    def depth(self) -> Depth:
        with self._lock:
            if not self._batches:
                return Depth()
            return Depth(len(self._batches), sum(b[1] for b in self._batches), time.time() - self._batches[0][0])

    def enforce_bounds(self) -> None:
        dropped = 0
        with self._lock:
            now = time.time()
            start = 1 if self._claimed else 0
            while len(self._batches) > start and (
                sum(b[1] for b in self._batches) > self.max_bytes or now - self._batches[start][0] > self.max_age
            ):
                dropped += len(self._batches[start][2])
                del self._batches[start]
        if dropped:
            count_drop("spool_full_or_expired", dropped)
            logger.error("posthog_otel: in-memory spool over its limits: dropped %d oldest event(s)", dropped)


def open_spool(directory: Path, max_bytes: int, max_age: float) -> Any:
    """A disk spool, or a memory one (with one warning) when the disk cannot be used."""
    try:
        return DiskSpool(directory, max_bytes, max_age)
    except OSError as error:
        warn_limited(
            "spool_memory",
            "posthog_otel: cannot write the spool directory %s (%s); undelivered events are kept in memory "
            "only and are lost if the process exits while PostHog is unreachable",
            directory, error, level=logging.WARNING,
        )  # fmt: skip
        return MemorySpool(max_bytes, max_age)


def _born(name: str) -> int:
    try:
        return int(name.split("-", 1)[0])
    except ValueError:
        return 0


def _unclaimed(name: str) -> str:
    if name.endswith(CLAIMED):
        return name[: -len(CLAIMED)].rsplit(".", 1)[0]
    return name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
