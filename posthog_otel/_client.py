"""Send PostHog events: encode, cut into requests, deliver each with retries, report.

The client decides nothing about events it could not deliver: it returns them, in order,
in ``SendReport.unsent``, and the caller spools or drops them.  What PostHog refused for
good (4xx, an event too large even alone, a Capture V1 ``drop``) is counted and logged
here, since no later attempt can change it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

from ._config import Settings, redact
from ._encoding import encode_events, request_groups
from ._http import HttpTransport
from ._log import count_drop, logger, warn_limited
from ._protocol import exchange_class, policy_for
from ._retry import Delivery, Outcome, RetryPolicy, deliver


@dataclass
class SendReport:
    delivered: int = 0
    rejected: int = 0  # refused for good (4xx), or answered "drop" by Capture V1
    too_large: int = 0  # over the size limits even alone
    retries: int = 0  # attempts after the first, over all requests
    unsent: List[Dict[str, Any]] = field(default_factory=list)  # retryable: spool or drop them
    unauthorized: bool = False
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.unsent and self.rejected == 0 and self.too_large == 0


class PostHogClient:
    """One per exporter; ``send`` may run on the exporter's thread and the spool's drainer."""

    def __init__(self, settings: Settings, transport: Optional[Any] = None, policy: Optional[RetryPolicy] = None):
        self._settings = settings
        self._transport = transport if transport is not None else HttpTransport()
        base = policy or RetryPolicy(max_attempts=settings.max_attempts)
        self.policy = policy_for(settings.capture_mode, base)
        self._exchange = exchange_class(settings.capture_mode)
        self._stop = threading.Event()
        self._warned_unauthorized = False

    def __repr__(self) -> str:
        return "PostHogClient(host=%r, api_key=%r)" % (self._settings.host, redact(self._settings.api_key))

    def send(self, events: Sequence[Dict[str, Any]], deadline: float, policy: Optional[RetryPolicy] = None) -> SendReport:
        policy = policy or self.policy
        report = SendReport()
        fitting, parts, too_large = encode_events(events)
        self._too_large(report, too_large)
        queue: Deque[Tuple[List[Dict[str, Any]], List[bytes]]] = deque(request_groups(fitting, parts))
        while queue:
            group, group_parts = queue.popleft()
            exchange = self._exchange(group, group_parts, self._transport.post, self._settings, policy)
            delivery = deliver(exchange.attempt, policy, deadline, self._stop)
            report.retries += max(0, delivery.attempts - 1)
            self._server_dropped(report, exchange.server_dropped)
            if delivery.outcome is Outcome.DELIVERED:
                report.delivered += len(group) - len(exchange.server_dropped)
            elif delivery.outcome is Outcome.REJECTED:
                self._rejected(report, len(exchange.pending), delivery)
            elif delivery.outcome is Outcome.TOO_LARGE:
                self._split(report, queue, exchange.pending, delivery)
            else:  # gave up, or unauthorized: what is left cannot go now, in order
                report.unsent = exchange.pending + [e for g, _ in queue for e in g]
                report.unauthorized = delivery.outcome is Outcome.UNAUTHORIZED
                report.detail = delivery.detail
                if report.unauthorized:
                    self._report_unauthorized(delivery)
                break
        return report

    def shutdown(self) -> None:
        """Interrupt any retry wait; later sends give up at once."""
        self._stop.set()
        self._transport.close()

    def _split(self, report: SendReport, queue: Deque, group: List[Dict[str, Any]], delivery: Delivery) -> None:
        """413: send the halves (in order, ahead of the rest); one event alone is dropped."""
        if len(group) <= 1:
            self._too_large(report, group)
            return
        middle = len(group) // 2
        for half in (group[middle:], group[:middle]):
            fitting, parts, too_large = encode_events(half)
            self._too_large(report, too_large)
            for piece in reversed(request_groups(fitting, parts)):
                queue.appendleft(piece)

    def _too_large(self, report: SendReport, events: List[Dict[str, Any]]) -> None:
        if not events:
            return
        report.too_large += len(events)
        count_drop("too_large", len(events))
        warn_limited(
            "too_large",
            "posthog_otel: dropped %d event(s) too large for PostHog (over 900 KiB, or refused with 413 "
            "even alone); first: %r",
            len(events), events[0].get("event"),
        )  # fmt: skip

    def _rejected(self, report: SendReport, count: int, delivery: Delivery) -> None:
        report.rejected += count
        count_drop("rejected", count)
        warn_limited(
            "rejected",
            "posthog_otel: PostHog rejected %d event(s) (%s); dropped",
            count, self._scrub(delivery.detail), level=logging.ERROR,
        )  # fmt: skip

    def _server_dropped(self, report: SendReport, dropped: List[Tuple[str, str]]) -> None:
        if not dropped:
            return
        report.rejected += len(dropped)
        count_drop("server_drop", len(dropped))
        warn_limited(
            "server_drop",
            "posthog_otel: PostHog dropped %d event(s) (first: %s %s)",
            len(dropped), dropped[0][0], dropped[0][1], level=logging.ERROR,
        )  # fmt: skip

    def _report_unauthorized(self, delivery: Delivery) -> None:
        message = (
            "posthog_otel: PostHog refused the project API key %s at %s (HTTP %s): check POSTHOG_API_KEY "
            "(a project key starts with phc_)"
        )
        args = (redact(self._settings.api_key), self._settings.host, delivery.status)
        if self._warned_unauthorized:
            logger.debug(message, *args)
        else:
            self._warned_unauthorized = True
            logger.error(message, *args)

    def _scrub(self, text: str) -> str:
        key = self._settings.api_key
        return text.replace(key, "<api key>") if key else text


def deadline_after(seconds: float) -> float:
    return time.monotonic() + seconds
