"""Reading a spool entry, and setting aside one that is not a batch we can send.

An entry is opened without following links and without blocking (a FIFO cannot hang us); it
must be a regular file of this user under a size cap and parse as a batch, each event shaped
like one. Whatever fails is moved to ``corrupt/`` (or removed), with a warning and a count,
and delivery goes on behind it: an entry must never wedge the spool.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from .._log import count_drop, warn_limited
from .encoding import EncodedBatch
from .spool_files import _CLAIMED, _OPEN_READ, _unlink

#: An entry larger than this is not ours (we write at most one request, 5 MiB, plus one event).
MAX_ENTRY_BYTES = 16 * 1024 * 1024


class _Unreadable(Exception):
    """An entry that is not a batch we can send; the message says why."""


def read_entry(directory: Path, name: str) -> EncodedBatch:
    """The batch in the entry ``name``; ``_Unreadable`` if it is not one we can send."""
    try:
        fd = os.open(str(directory / name), _OPEN_READ)
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


def count_events(directory: Path, name: str) -> int:
    try:
        return read_entry(directory, name).count
    except _Unreadable:
        return 0


def quarantine(directory: Path, name: str, why: str) -> None:
    """Set ``name`` aside in ``corrupt/`` (else remove it), say why and count it."""
    corrupt = directory / "corrupt"
    claimed = _CLAIMED.fullmatch(name)
    try:
        try:
            os.mkdir(str(corrupt), 0o700)
        except FileExistsError:
            pass
        if not stat.S_ISDIR(os.lstat(str(corrupt)).st_mode):
            raise OSError("corrupt is not a directory")
        os.rename(str(directory / name), str(corrupt / (claimed.group(1) if claimed else name)))
        where = "moved to %s" % corrupt
    except OSError:
        where = "removed" if _unlink(directory / name) else "left in place"
    count_drop("spool_corrupt")
    warn_limited(
        "spool_corrupt",
        "posthog_otel: spool file %s is not a batch we can send (%s); %s, delivery goes on",
        claimed.group(1) if claimed else name, why, where,
    )  # fmt: skip


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
