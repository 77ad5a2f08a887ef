"""The head of the line and its timing: which shipment is out, when the next attempt is due,
and what an answer means for it (backoff, Retry-After, a refused key, giving up).

The dispatcher thread owns the ``Schedule``; one shipment is in flight at a time, so a later
``$set`` never overtakes an earlier one.
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Optional

from .._config import Settings, effective, redact, scrub
from .._hooks import Hooks
from .._log import logger, warn_limited
from .._stats import Stats
from .client import Shipment, Step
from .http import Transport
from .line import Line
from .retry import Backoff, Outcome, RetryPolicy, Verdict
from .spool_access import SpoolAccess

#: Seconds within which PostHog must have answered something (any status) for exit to wait
#: for a request in flight, rather than abandon it after ``EXIT_STALL`` (a re-sent batch
#: re-applies its ``$set``s): a PostHog that answers slowly is waited for, a silent one is not.
ANSWERED_RECENTLY = 30.0


class Settled(NamedTuple):
    delivered: bool  # PostHog took some of it: progress
    retrying: bool  # it is tried again later (backing off, or the key was refused)


class Schedule:
    def __init__(
        self, settings: Settings, policy: RetryPolicy, transport: Transport, hooks: Hooks, spool: SpoolAccess,
        stats: Stats,
    ) -> None:  # fmt: skip
        self._settings = settings
        self.policy = policy
        self._transport = transport
        self._hooks = hooks
        self._spool = spool
        self._stats = stats
        self.shipment: Optional[Shipment] = None
        self.in_flight = False
        self.sent_at = 0.0
        self.send_at = 0.0
        self.answered_at = -ANSWERED_RECENTLY  # when PostHog last answered anything (monotonic)
        self.asked_to_wait_until = 0.0  # a Retry-After's end: exit does not come back before it
        self._backoff = Backoff(policy)
        self._warned_unauthorized = False

    def after_fork(self) -> None:
        self.shipment, self.in_flight, self.send_at, self.asked_to_wait_until = None, False, 0.0, 0.0

    @property
    def in_memory(self) -> bool:
        """The shipment's events are only in memory (not spilled)."""
        return self.shipment is not None and self.shipment.in_memory

    def due(self, now: float, line: Line) -> Optional[Shipment]:
        """The shipment to send now (it is in flight from here), or None."""
        if self.in_flight or now < self.send_at:
            return None
        if self.shipment is None:
            chosen, retry_at = line.next(now)
            if retry_at is not None:
                self.send_at = retry_at
            if chosen is None:
                return None
            settings = effective(self._settings)  # the test fixture's local PostHog, while it runs
            self.shipment = Shipment(
                chosen.batch, chosen.claim, chosen.born, settings, self.policy, self._transport.post, self._hooks.report
            )
        self.in_flight, self.sent_at = True, now
        return self.shipment

    def settle(self, shipment: Shipment, verdict: Verdict, now: float) -> Settled:
        self.in_flight = False
        if verdict.status is not None:
            self.answered_at = now
        if shipment is not self.shipment:
            return Settled(False, False)  # an answer for a shipment abandoned at exit
        step = shipment.settle(verdict)
        delivered, shipment.delivered = shipment.delivered, 0
        if delivered:
            self._stats.add("exported", delivered)
            if shipment.claim is not None:
                self._stats.add("drained", delivered)
            self._backoff.succeeded()
        if step is Step.DONE or step is Step.NEXT:
            if step is Step.DONE:
                self.shipment = None
                if shipment.claim is not None:
                    self._spool.done(shipment.claim)
            self.send_at = now
            return Settled(bool(delivered), False)
        if step is Step.UNAUTHORIZED:
            self._report_unauthorized(verdict)
            wait = self.policy.unauthorized_wait
        else:
            self._stats.add("retried")
            wait = self._backoff.failed(verdict.retry_after)
            if verdict.retry_after:  # PostHog's own word, not our backoff: 0 means "now"
                self.asked_to_wait_until = now + min(verdict.retry_after, self.policy.retry_after_cap)
        # No spool to keep it in (off, or refused when opened: one notion of "no spool"): the
        # attempts are bounded, as with the spool off.
        if not self._spool.on and (step is Step.UNAUTHORIZED or shipment.attempts >= self.policy.max_attempts):
            self._give_up(shipment, verdict, "unauthorized" if step is Step.UNAUTHORIZED else "delivery_failed")
        self.send_at = now + wait
        return Settled(bool(delivered), True)

    def release(self) -> None:
        """Put a claimed shipment back at the head of the spool (what is left of it)."""
        shipment, self.shipment = self.shipment, None
        if shipment is not None and shipment.claim is not None:
            self._spool.release(shipment.claim, shipment.remaining())

    def park_reason(self) -> Optional[str]:
        """What no wait fixes: PostHog refused the project key (it is tried again every
        ``unauthorized_wait``, 60 s, but a wrong key stays wrong)."""
        shipment = self.shipment
        verdict = shipment.verdict if shipment is not None else None
        if self.in_flight or verdict is None or verdict.outcome is not Outcome.UNAUTHORIZED:
            return None
        return "PostHog refused the project API key %s (HTTP %s): check POSTHOG_API_KEY" % (
            redact(self._settings.api_key),
            verdict.status,
        )

    def _give_up(self, shipment: Shipment, verdict: Verdict, reason: str) -> None:
        lost = shipment.drop(reason, scrub(verdict.detail, self._settings.api_key), verdict.status)
        self.shipment = None
        warn_limited(  # a refused key was already reported, loudly
            "gave_up:" + reason,
            "posthog_otel: could not deliver %d event(s) to %s (%s); dropped because the spool is off",
            lost, self._settings.host, scrub(verdict.detail, self._settings.api_key),
            level=logging.WARNING if reason == "unauthorized" else logging.ERROR,
        )  # fmt: skip

    def _report_unauthorized(self, verdict: Verdict) -> None:
        message = (
            "posthog_otel: PostHog refused the project API key %s at %s (HTTP %s): check POSTHOG_API_KEY "
            "(a project key starts with phc_)"
        )
        args = (redact(self._settings.api_key), self._settings.host, verdict.status)
        if self._warned_unauthorized:
            logger.debug(message, *args)
        else:
            self._warned_unauthorized = True
            logger.error(message, *args)
