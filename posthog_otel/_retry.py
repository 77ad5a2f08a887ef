"""Retry policy as data, plus the loop that applies it to one request.

Retried: connection errors, timeouts, 408, 429 and 5xx.  Backoff before attempt n+1 is
``base * 2**(n-1)`` with +/-20% jitter (so workers that failed together do not retry
together), capped; a ``Retry-After`` header (seconds or HTTP-date) is a floor, capped
too.  All attempts and waits share one deadline, and every wait is an ``Event.wait`` so
shutdown interrupts it.
"""

from __future__ import annotations

import datetime as _dt
import enum
import random
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Callable, FrozenSet, NamedTuple, Optional

from ._http import Response, TransportError


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    jitter: float = 0.2
    retry_after_cap: float = 30.0
    retryable_statuses: FrozenSet[int] = frozenset({408, 429})

    def is_retryable(self, status: int) -> bool:
        return status in self.retryable_statuses or 500 <= status <= 599

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        delay = min(self.backoff_base * 2 ** (attempt - 1), self.backoff_max)
        return delay * (1 - self.jitter + 2 * self.jitter * rand())

    def wait_after(self, attempt: int, retry_after: Optional[float], rand: Callable[[], float] = random.random) -> float:
        wait = self.backoff(attempt, rand)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.retry_after_cap))
        return wait


def parse_retry_after(value: Optional[str], now: Optional[_dt.datetime] = None) -> Optional[float]:
    """Seconds from a ``Retry-After`` value: delta-seconds or an HTTP-date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    #: A retryable failure that outlasted the attempts or the deadline (or shutdown came).
    GAVE_UP = "gave_up"
    #: PostHog answered with a final 4xx: sending the same bytes again cannot help.
    REJECTED = "rejected"
    #: 401/403: the project key is wrong.
    UNAUTHORIZED = "unauthorized"
    #: 413: the request is too large; smaller requests may pass.
    TOO_LARGE = "too_large"


class Verdict(NamedTuple):
    """What one attempt came to: a final ``outcome``, or None to try again."""

    outcome: Optional[Outcome]
    status: Optional[int]
    detail: str = ""
    retry_after: Optional[float] = None


@dataclass(frozen=True)
class Delivery:
    outcome: Outcome
    attempts: int
    status: Optional[int] = None
    detail: str = ""


Attempt = Callable[[int, float], Verdict]


def deliver(
    attempt: Attempt,
    policy: RetryPolicy,
    deadline: float,
    stop: threading.Event,
    clock: Callable[[], float] = time.monotonic,
    rand: Callable[[], float] = random.random,
) -> Delivery:
    """Call ``attempt(number, timeout)`` until it reaches an outcome or time runs out.

    ``attempt`` performs one request and judges the answer (protocols differ in what a
    success looks like); a ``TransportError`` from it counts as a retryable failure.
    """
    number = 0
    while True:
        number += 1
        remaining = deadline - clock()
        if remaining <= 0 or stop.is_set():
            return Delivery(Outcome.GAVE_UP, number - 1, None, "deadline reached" if remaining <= 0 else "shut down")
        try:
            verdict = attempt(number, remaining)
        except TransportError as error:
            verdict = Verdict(None, None, "no response (%s)" % error)
        if verdict.outcome is not None:
            return Delivery(verdict.outcome, number, verdict.status, verdict.detail)
        if number >= policy.max_attempts:
            return Delivery(Outcome.GAVE_UP, number, verdict.status, verdict.detail)
        wait = policy.wait_after(number, verdict.retry_after, rand)
        if clock() + wait >= deadline:
            return Delivery(Outcome.GAVE_UP, number, verdict.status, verdict.detail + "; next retry would pass the deadline")
        if stop.wait(wait):
            return Delivery(Outcome.GAVE_UP, number, verdict.status, verdict.detail + "; shut down while waiting to retry")


def judge_status(response: Response, policy: RetryPolicy) -> Verdict:
    """The verdict on a non-success HTTP status, shared by both protocols."""
    status = response.status
    if status in (401, 403):
        return Verdict(Outcome.UNAUTHORIZED, status, describe(response))
    if status == 413:
        return Verdict(Outcome.TOO_LARGE, status, describe(response))
    if policy.is_retryable(status):
        return Verdict(None, status, "HTTP %d" % status, parse_retry_after(response.headers.get("Retry-After")))
    return Verdict(Outcome.REJECTED, status, describe(response))


def describe(response: Response) -> str:
    text = " ".join(response.text.split())
    return "HTTP %d %s" % (response.status, text[:300])
