"""Send PostHog events: encode, cut into requests, POST with retries, report what happened.

The client never raises and never decides what to do with data that did not arrive; it
reports per outcome so the exporter (and later a spool) can decide.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ._config import Settings, redact
from ._encoding import batch_body, compress, encode_events, split_by_size
from ._http import HttpTransport, Response
from ._log import count_drop, logger, warn_limited
from ._retry import Delivery, Outcome, RetryPolicy, deliver


@dataclass
class SendReport:
    delivered: int = 0
    failed: int = 0  # retryable failures that ran out of attempts or time
    rejected: int = 0  # refused by PostHog for good (4xx)
    too_large: int = 0  # over the per-event size limit
    deliveries: List[Delivery] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.rejected == 0 and self.too_large == 0


class PostHogClient:
    """One per exporter.  ``send`` is called from one thread at a time (the processor's)."""

    def __init__(self, settings: Settings, transport: Optional[Any] = None, policy: Optional[RetryPolicy] = None):
        self._settings = settings
        self._api_key: str = settings.api_key or ""
        self._url = settings.host + "/batch/"
        self._transport = transport if transport is not None else HttpTransport()
        self._policy = policy or RetryPolicy(max_attempts=settings.max_attempts)
        self._stop = threading.Event()
        self._warned_unauthorized = False

    def __repr__(self) -> str:
        return "PostHogClient(url=%r, api_key=%r)" % (self._url, redact(self._api_key))

    def send(self, events: Sequence[Dict[str, Any]], deadline: float) -> SendReport:
        report = SendReport()
        parts, too_large = encode_events(events)
        if too_large:
            report.too_large = len(too_large)
            count_drop("too_large", len(too_large))
            warn_limited(
                "too_large",
                "posthog_otel: dropped %d event(s) larger than PostHog's 900 KiB limit (first: %r)",
                len(too_large),
                too_large[0].get("event"),
            )
        groups = split_by_size(parts)
        for index, group in enumerate(groups):
            delivery = deliver(lambda timeout, g=group: self._post(g, timeout), self._policy, deadline, self._stop)
            report.deliveries.append(delivery)
            if delivery.outcome is Outcome.DELIVERED:
                report.delivered += len(group)
                continue
            if delivery.outcome is Outcome.REJECTED:
                report.rejected += len(group)
                self._report_rejected(len(group), delivery)
                continue
            # Gave up or unauthorized: the rest of this batch would meet the same fate.
            left = sum(len(g) for g in groups[index:])
            report.failed += left
            if delivery.outcome is Outcome.UNAUTHORIZED:
                self._report_unauthorized(left, delivery)
            else:
                count_drop("delivery_failed", left)
                warn_limited(
                    "gave_up",
                    "posthog_otel: could not deliver %d event(s) to %s after %d attempt(s) (%s); dropped",
                    left,
                    self._settings.host,
                    delivery.attempts,
                    delivery.detail,
                    level=logging.ERROR,
                )
            break
        return report

    def shutdown(self) -> None:
        """Interrupt any retry wait; later sends give up at once."""
        self._stop.set()
        self._transport.close()

    def _post(self, parts: Sequence[bytes], timeout: float) -> Response:
        sent_at = _dt.datetime.now(_dt.timezone.utc).isoformat()
        body = batch_body(self._api_key, parts, sent_at, self._settings.historical_migration)
        headers = {"Content-Type": "application/json"}
        if self._settings.gzip:
            body = compress(body)
            headers["Content-Encoding"] = "gzip"
        return self._transport.post(self._url, body, headers, timeout)

    def _report_rejected(self, count: int, delivery: Delivery) -> None:
        count_drop("rejected", count)
        warn_limited(
            "rejected",
            "posthog_otel: PostHog rejected %d event(s) (%s); dropped",
            count,
            self._scrub(delivery.detail),
            level=logging.ERROR,
        )

    def _report_unauthorized(self, count: int, delivery: Delivery) -> None:
        count_drop("unauthorized", count)
        message = (
            "posthog_otel: PostHog refused the project API key %s at %s (HTTP %s): check POSTHOG_API_KEY "
            "(a project key starts with phc_); %d event(s) dropped"
        )
        args = (redact(self._api_key), self._settings.host, delivery.status, count)
        if self._warned_unauthorized:
            logger.debug(message, *args)
        else:
            self._warned_unauthorized = True
            logger.error(message, *args)

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "<api key>") if self._api_key else text


def deadline_after(seconds: float) -> float:
    return time.monotonic() + seconds
