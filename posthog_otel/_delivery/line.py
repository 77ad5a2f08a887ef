"""Where encoded events wait their turn, in order: memory, then the spool.

The dispatcher thread owns the ``Line``. New batches go to memory, or straight behind the
spool while it holds older batches. What waits in memory longer than ``spool_after``, or
past ``MEMORY_MAX_BYTES``, is spilled to the spool (the shipment being sent first); without a
usable spool memory is bounded and the oldest are counted out. ``next`` says what to send:
the spool's oldest batches while it holds any, else memory's oldest, up to one request.
"""

from __future__ import annotations

import logging
from typing import List, NamedTuple, Optional, Tuple

from .._config import Settings, scrub
from .._log import count_drop, logger, warn_limited
from .client import Shipment
from .encoding import MAX_REQUEST_BYTES, EncodedBatch
from .memory import MEMORY_MAX_BYTES, MemoryQueue, Waiting, everything, within
from .retry import Verdict
from .spool import Claim
from .spool_access import SpoolAccess

#: Request body budget: PostHog takes 20 MiB; the envelope needs a little.
REQUEST_BYTES = MAX_REQUEST_BYTES - 1024


class Next(NamedTuple):
    """What goes next: one request's worth of events, and where they wait meanwhile."""

    batch: EncodedBatch
    claim: Optional[Claim]  # the spool's, or None: memory's
    born: float


def said(verdict: Optional[Verdict], api_key: Optional[str]) -> str:
    """What PostHog last said (key scrubbed), as what delivery waits on."""
    if verdict is None:
        return "no answer yet"
    return scrub(verdict.detail or "HTTP %s" % verdict.status, api_key)


def waiting_for(shipment: Optional[Shipment], api_key: Optional[str]) -> str:
    """What the shipment waits on, as PostHog last said it."""
    return said(shipment.verdict if shipment is not None else None, api_key)


class Line:
    def __init__(self, settings: Settings, spool: SpoolAccess) -> None:
        self._settings = settings
        self._spool = spool
        self.memory = MemoryQueue()

    def arrivals(self, batch: EncodedBatch, born: float) -> List[Waiting]:
        return [Waiting(piece, born) for piece in batch.requests(REQUEST_BYTES) if piece.count]

    def enqueue(self, arrived: List[Waiting]) -> None:
        """New batches behind the spool (as few files as requests allow), or in memory."""
        staged = MemoryQueue(arrived)
        if self._spool.first and self._spool.usable(arrived[0].born):
            while staged:
                group = staged.pop(within(REQUEST_BYTES))
                if not self._spool.write(EncodedBatch.join([w.batch for w in group])):
                    self.memory.extend(group)
                    break
        self.memory.extend(staged.pop(everything))

    def next(self, now: float) -> Tuple[Optional[Next], Optional[float]]:
        """What to send next, or (None, when to look again): the spool's oldest batches while it
        holds any, else memory's. A spool whose batches cannot be claimed (a read-only disk)
        holds everything newer back: memory waits behind it (bounded, the oldest counted out),
        so that no later ``$set`` goes first."""
        if self._spool.first and self._spool.on:
            claim, retry_at = self._spool.claim_head(REQUEST_BYTES, now)
            if claim is not None:
                return Next(claim.batch, claim, now), None
            if retry_at is not None:
                return None, retry_at
        if not self.memory:
            return None, None
        taken = self.memory.pop(within(REQUEST_BYTES))
        return Next(EncodedBatch.join([w.batch for w in taken]), None, taken[0].born), None

    def spill_due(self, now: float, shipment: Optional[Shipment]) -> Optional[str]:
        """Why what waits in memory must go to the spool now, or None."""
        if not self._spool.usable(now):
            return None
        spool_after = self._settings.spool_after
        late = self.memory and now - self.memory.oldest().born >= spool_after
        if late or shipment is not None and shipment.in_memory and now - shipment.born >= spool_after:
            return "late"
        if self.memory.bytes > MEMORY_MAX_BYTES:
            return "full"
        if self.memory and self._spool.first:
            return "behind"
        return None

    def spill_all(self, shipment: Optional[Shipment], why: str = "late") -> bool:
        """Everything waiting in memory to the spool, the shipment first: order kept, and the
        process may now die without losing it. False when the spool cannot be written."""
        spilled = 0
        if shipment is not None and shipment.in_memory:
            remaining = shipment.remaining()
            if remaining.count:
                claim = self._spool.write_claimed(remaining)
                if claim is None:
                    return False
                shipment.claim = claim
                spilled += remaining.count
        spilled += sum(w.batch.count for w in self.memory.pop(lambda w: self._spool.write(w.batch)))
        if self.memory:
            return False  # the disk refused one: it and those behind it stay in memory
        self._spool.first = True
        if not spilled:
            return True
        if why == "behind":  # PostHog is fine: earlier batches (another process's, a past run's) go first
            logger.debug(
                "posthog_otel: %d event(s) queued in the spool %s behind earlier batches", spilled, self._spool
            )
            return True
        warn_limited(
            "spooled",
            "posthog_otel: PostHog has not taken %d event(s) within %.3g s (%s); kept in the spool %s, "
            "sent in order as soon as it does",
            spilled, self._settings.spool_after,
            waiting_for(shipment, self._settings.api_key) if why == "late"
            else "%d MiB wait in memory" % (MEMORY_MAX_BYTES >> 20), self._spool,
        )  # fmt: skip
        return True

    def limit_memory(self, now: float, shipment: Optional[Shipment]) -> None:
        """Without a usable spool, memory is the only place left: bounded, oldest dropped."""
        if self._spool.usable(now):
            return
        max_age = self._settings.spool_max_age
        memory = self.memory
        dropped = memory.pop(lambda w: memory.bytes > MEMORY_MAX_BYTES or now - w.born > max_age)
        if dropped:
            count_drop("memory_full", sum(w.batch.count for w in dropped))
            warn_limited(
                "memory_full",
                "posthog_otel: %d event(s) dropped: PostHog has not taken them (%s) and memory holds at most "
                "%d MiB of them while the spool is %s",
                sum(w.batch.count for w in dropped), waiting_for(shipment, self._settings.api_key),
                MEMORY_MAX_BYTES >> 20, "unusable" if self._spool.on else "off", level=logging.ERROR,
            )  # fmt: skip

    def drop_at_exit(self, shipment: Optional[Shipment]) -> int:
        """Exit with no usable spool: what only memory holds is lost; how many events."""
        lost = self.memory.events + (shipment.remaining().count if shipment is not None and shipment.in_memory else 0)
        self.memory.clear()
        return lost

    def wake_times(self, now: float, shipment: Optional[Shipment]) -> List[float]:
        """When something here falls due without being told (a spill, a look at the spool)."""
        times: List[float] = []
        spool = self._spool
        if spool.usable(now):
            if self.memory:
                times.append(self.memory.oldest().born + self._settings.spool_after)
            if shipment is not None and shipment.in_memory:
                times.append(shipment.born + self._settings.spool_after)
        if spool.spool is not None and (not spool.first or spool.spool.has_undeleted):
            times.append(spool.next_poll)
        if spool.on and not spool.usable(now):
            times.append(spool.down_until)
        return times
