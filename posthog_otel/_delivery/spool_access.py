"""The spool as the dispatcher thread uses it: open or not, usable or failed for a while,
and whether it holds batches older than any in memory (which then go first).

A spool that fails (a read-only or full disk) is left alone for ``SPOOL_RETRY`` seconds,
with one warning: meanwhile memory is the only place left. Every filesystem error ends here
as a warning and a pause, never in the dispatcher thread.
"""

from __future__ import annotations

import logging
import time
from typing import Optional, Tuple

from .._config import Settings
from .._log import warn_limited
from .._stats import Stats
from .encoding import EncodedBatch
from .memory import MEMORY_MAX_BYTES
from .spool import BUSY, Claim, DiskSpool, SpoolUnavailable, spool_directory

#: Seconds between looks at the spool for batches of other processes.
SPOOL_POLL = 1.0
#: Seconds between looks at a spool whose oldest batch another process is sending.
BUSY_POLL = 0.25
#: Seconds before a spool that failed (a read-only or full disk) is tried again.
SPOOL_RETRY = 30.0


def open_spool(settings: Settings) -> Optional[DiskSpool]:
    """The spool ``settings`` ask for, or None: off, or refused (said once)."""
    if not settings.spool:
        return None
    directory = spool_directory(settings)
    try:
        return DiskSpool(directory, settings.spool_max_bytes, settings.spool_max_age)
    except SpoolUnavailable as error:
        warn_limited(
            "spool_memory",
            "posthog_otel: cannot use the spool directory (%s); undelivered events are kept in memory only "
            "(at most %d MiB), and are lost if the process ends while PostHog is unreachable",
            error, MEMORY_MAX_BYTES >> 20,
        )  # fmt: skip
        return None


class SpoolAccess:
    def __init__(self, spool: Optional[DiskSpool], stats: Stats) -> None:
        self.spool = spool
        self._stats = stats
        #: The spool holds batches older than any in memory (ours, another process's, a past
        #: run's): they are sent first, and new batches queue behind them.
        self.first = False
        self.busy = False  # the spool's oldest batch is another sender's
        self.down_until = 0.0
        self.next_poll = 0.0

    def __str__(self) -> str:
        return str(self.spool)

    @property
    def on(self) -> bool:
        """A spool was opened (it may still fail for a while)."""
        return self.spool is not None

    def usable(self, now: float) -> bool:
        return self.spool is not None and now >= self.down_until

    def failed(self, error: OSError, now: float) -> None:
        self.down_until = now + SPOOL_RETRY
        warn_limited(
            "spool_failed",
            "posthog_otel: cannot use the spool %s (%s); undelivered events are kept in memory (at most %d MiB) "
            "and it is tried again in %d s",
            self.spool, error, MEMORY_MAX_BYTES >> 20, SPOOL_RETRY, level=logging.ERROR,
        )  # fmt: skip

    def write(self, batch: EncodedBatch) -> bool:
        """Append ``batch`` behind what the spool holds; False when the disk refuses."""
        assert self.spool is not None
        try:
            self.spool.append(batch)
        except OSError as error:
            self.failed(error, time.monotonic())
            return False
        self._stats.add("spooled", batch.count)
        return True

    def write_claimed(self, batch: EncodedBatch) -> Optional[Claim]:
        """Append ``batch`` already claimed by us (it is being sent); None when the disk refuses."""
        assert self.spool is not None
        try:
            claim = self.spool.append(batch, claimed=True)
        except OSError as error:
            self.failed(error, time.monotonic())
            return None
        self._stats.add("spooled", batch.count)
        return claim

    def poll(self, now: float) -> None:
        """Batches of other processes (or of one that died) go first: queue behind them (read
        even while the spool cannot be written: what it holds is older than what memory holds).
        Delivered batches the disk would not let us remove are removed as soon as it does."""
        if self.spool is None or now < self.next_poll:
            return
        self.next_poll = now + SPOOL_POLL
        try:
            self.spool.retry_removals()
            if not self.first and self.spool.pending():
                self.first = True
        except OSError as error:
            self.failed(error, now)

    def claim_head(self, request_bytes: int, now: float) -> Tuple[Optional[Claim], Optional[float]]:
        """The oldest batches, up to one request: (claim, None); (None, when to look again) if
        they cannot be taken now; (None, None) once the spool is empty (memory goes next)."""
        assert self.spool is not None
        try:
            head = self.spool.claim_head(request_bytes, 1 << 62)
        except OSError as error:
            self._claims_failed(error)
            return None, now + SPOOL_POLL
        self.busy = head is BUSY
        if isinstance(head, Claim):
            return head, None
        if self.busy:
            return None, now + BUSY_POLL
        self.first = False  # empty
        return None, None

    def done(self, claim: Claim) -> None:
        """Delivered: remove the batches (later, if the disk refuses now)."""
        try:
            claim.done()
        except OSError as error:
            self.failed(error, time.monotonic())

    def release(self, claim: Claim, remaining: EncodedBatch) -> None:
        """Put what is left of a claim back at the head of the spool."""
        try:
            claim.release(remaining)
        except OSError as error:
            self.failed(error, time.monotonic())

    def pending(self) -> bool:
        try:
            return self.spool is not None and self.spool.pending()
        except OSError:
            return False

    def _claims_failed(self, error: OSError) -> None:
        """The spool holds batches we cannot take (a read-only disk): wait, holding newer ones."""
        warn_limited(
            "spool_claims_failed",
            "posthog_otel: cannot take batches out of the spool %s (%s); newer events wait in memory behind them "
            "(at most %d MiB), so that none overtakes an older one", self.spool, error, MEMORY_MAX_BYTES >> 20,
            level=logging.ERROR,
        )  # fmt: skip
