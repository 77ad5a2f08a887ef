"""The head of the line: one run of events being delivered, one request at a time.

A ``Shipment`` holds at most one request's worth of events (5 MiB of JSON); a 413 cuts it
in halves, sent in order.  ``attempt`` makes one request and runs on the HTTP thread, so a
PostHog that never answers holds nothing but that thread; ``settle`` applies the answer on
the dispatcher's thread and says what comes next.  What PostHog refused for good (4xx, an
event too large even alone, a Capture V1 ``drop``) is counted and logged here, since no
later attempt can change it; what it did not take yet stays in the shipment for the next
attempt, or goes to the spool.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Optional

from .._config import Settings, scrub
from .._hooks import DeliveryError
from .._log import count_drop, warn_limited
from .encoding import EncodedBatch
from .http import Post, TransportError
from .protocol import Exchange, exchange_class
from .retry import Outcome, RetryPolicy, Verdict

if TYPE_CHECKING:
    from .spool import Claim


class Step(enum.Enum):
    DONE = "done"  # nothing left: the next shipment may go
    NEXT = "next"  # a request went through; send the next one now
    RETRY = "retry"  # PostHog did not take it yet: back off, then try the same again
    UNAUTHORIZED = "unauthorized"  # the key was refused: wait long, then try again


class Shipment:
    def __init__(
        self,
        batch: EncodedBatch,
        claim: Optional["Claim"],
        born: float,
        settings: Settings,
        policy: RetryPolicy,
        post: Post,
        report: Optional[Callable[[DeliveryError, Callable[[], Any]], None]] = None,
    ) -> None:
        #: Where the events wait meanwhile: the spool's claim on them, or None (only in memory).
        self.claim = claim
        #: When its oldest event was handed to the exporter (monotonic seconds).
        self.born = born
        self._settings = settings
        self._policy = policy
        self._post = post
        #: Tells the application (``on_error``) about events dropped undelivered.
        self._report = report or (lambda error, events: None)
        self._requests: Deque[EncodedBatch] = deque(batch.requests())
        self._exchange: Optional[Exchange] = None
        self._counted = 0  # of the current exchange's deliveries, how many are in ``delivered``
        #: Attempts at the current request, and what the latest answer said.
        self.attempts = 0
        self.verdict: Optional[Verdict] = None
        #: Events PostHog accepted since the last ``settle`` (the dispatcher counts them).
        self.delivered = 0

    @property
    def in_memory(self) -> bool:
        """Only memory holds these events: a process that dies now loses them."""
        return self.claim is None

    @property
    def count(self) -> int:
        return sum(r.count for r in self._requests)

    def attempt(self, timeout: float) -> Verdict:
        """One request for the first undelivered piece; never raises."""
        if self._exchange is None:
            self._exchange = exchange_class(self._settings.capture_mode)(
                self._requests[0], self._post, self._settings, self._policy
            )
        self.attempts += 1
        try:
            return self._exchange.attempt(self.attempts, timeout)
        except TransportError as error:
            return Verdict(None, None, "no response (%s)" % error)
        except Exception as error:  # a transport of the application's that raises anything else
            warn_limited("transport_raised:%s" % type(error).__name__, "posthog_otel: the transport raised %s (%s); "
                         "taken as no answer, the request is tried again", type(error).__name__,
                         scrub(str(error), self._settings.api_key), level=logging.ERROR)  # fmt: skip
            return Verdict(None, None, "no response (the transport raised %s)" % type(error).__name__)

    def settle(self, verdict: Verdict) -> Step:
        """Apply the answer to the request ``attempt`` made."""
        self.verdict = verdict
        exchange = self._exchange
        assert exchange is not None
        self._server_dropped(exchange)
        self.delivered += exchange.delivered - self._counted
        self._counted = exchange.delivered
        if verdict.outcome is None:
            return Step.RETRY
        if verdict.outcome is Outcome.UNAUTHORIZED:
            return Step.UNAUTHORIZED
        self._requests.popleft()
        self._exchange, self.attempts, self._counted = None, 0, 0
        if verdict.outcome is Outcome.REJECTED:
            count_drop("rejected", exchange.pending)
            detail = scrub(verdict.detail, self._settings.api_key)
            warn_limited(
                "rejected",
                "posthog_otel: PostHog rejected %d event(s) (%s); dropped",
                exchange.pending, detail, level=logging.ERROR,
            )  # fmt: skip
            self._report(DeliveryError("rejected", detail, verdict.status), exchange.remaining().events)
        elif verdict.outcome is Outcome.TOO_LARGE:
            self._halve(exchange.remaining())
        return Step.NEXT if self._requests else Step.DONE

    def remaining(self) -> EncodedBatch:
        """Everything not delivered yet, in order (what a spill writes, or a release keeps)."""
        pieces = list(self._requests)
        if self._exchange is not None and pieces:
            pieces[0] = self._exchange.remaining()
        return EncodedBatch.join([p for p in pieces if p.count]) if pieces else EncodedBatch.of((), 0)

    def drop(self, reason: str, detail: str = "", status: Optional[int] = None) -> int:
        """Give up on what is left (the spool is off); returns how many events that was."""
        left = self.remaining()
        count_drop(reason, left.count)
        self._requests.clear()
        self._exchange = None
        if left.count:
            self._report(DeliveryError(reason, detail, status), left.events)
        return left.count

    def _halve(self, piece: EncodedBatch) -> None:
        """413: send the halves, in order, ahead of the rest; one event alone is dropped."""
        if piece.count <= 1:
            too_large(piece.count)
            self._report(DeliveryError("too_large", "refused with 413 even alone", 413), piece.events)
            return
        first, second = piece.split(piece.count // 2)
        self._requests.appendleft(second)
        self._requests.appendleft(first)

    def _server_dropped(self, exchange: Exchange) -> None:
        dropped, exchange.server_dropped = exchange.server_dropped, []
        if dropped:
            count_drop("server_drop", len(dropped))
            detail = scrub(dropped[0][1], self._settings.api_key)
            warn_limited(
                "server_drop",
                "posthog_otel: PostHog dropped %d event(s) (first: %s %s)",
                len(dropped), dropped[0][0], detail, level=logging.ERROR,
            )  # fmt: skip
            uuids = {uuid for uuid, _ in dropped}
            self._report(
                DeliveryError("server_drop", detail),
                lambda: [e for e in exchange.batch.events() if e.get("uuid") in uuids],
            )


def too_large(count: int, first: Any = None) -> None:
    if not count:
        return
    count_drop("too_large", count)
    warn_limited(
        "too_large",
        "posthog_otel: dropped %d event(s) too large for PostHog (over 900 KiB, or refused with 413 even alone)%s",
        count, "; first: %r" % (first,) if first is not None else "",
    )  # fmt: skip
