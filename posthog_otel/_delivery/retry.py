"""Retry policy as data, the verdict on one answer, and the backoff between attempts.

Retried: connection errors, timeouts, 408, 429 and 5xx.  The wait after the n-th failure in
a row is ``base * 2**(n-1)`` with +/-20% jitter (so workers that failed together do not retry
together), capped; a ``Retry-After`` header (seconds or HTTP-date) is a floor, capped too.

Any success resets the count.  And while PostHog has taken something within ``flaky_window``
seconds (or the exporter started within it), it is flaky rather than down (a load balancer with one bad backend): each retry has
a fair chance, so the wait stays at most ``flaky_max``.  Without that, a streak of six
failures in a PostHog failing half the requests left operations waiting half a minute.  A
PostHog that has taken nothing for longer is down, and gets the full backoff.  The loop that
applies this is the dispatcher's (one attempt at a time, on its own thread), so nothing here
sleeps.
"""

from __future__ import annotations

import datetime as _dt
import enum
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Callable, FrozenSet, NamedTuple, Optional

from .http import Response


@dataclass(frozen=True)
class RetryPolicy:
    #: Attempts per request when the spool is off (with the spool on, data waits there instead).
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 10.0
    jitter: float = 0.2
    retry_after_cap: float = 30.0
    retryable_statuses: FrozenSet[int] = frozenset({408, 429})
    #: The wait after PostHog refused the project key (401/403): it will not change soon.
    unauthorized_wait: float = 60.0
    #: While PostHog took something within this many seconds, waits stay under ``flaky_max``.
    flaky_window: float = 30.0
    flaky_max: float = 0.5

    def is_retryable(self, status: int) -> bool:
        return status in self.retryable_statuses or 500 <= status <= 599

    def backoff(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after ``failures`` failed attempts in a row (1-based)."""
        delay: float = min(self.backoff_base * 2 ** min(failures - 1, 62), self.backoff_max)  # int ** int: Any to mypy
        return delay * (1 - self.jitter + 2 * self.jitter * rand())

    def wait_after(
        self,
        failures: int,
        retry_after: Optional[float],
        rand: Callable[[], float] = random.random,
        flaky: bool = False,
    ) -> float:
        wait = self.backoff(failures, rand)
        if flaky:
            wait = min(wait, self.flaky_max * (1 + self.jitter))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.retry_after_cap))
        return wait


class Backoff:
    """Failures in a row, and the wait they call for; ``succeeded()`` starts over."""

    def __init__(
        self,
        policy: RetryPolicy,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.failures = 0
        self._rand = rand
        self._clock = clock
        self._last_success = clock()  # a process just started has no evidence of an outage yet

    def failed(self, retry_after: Optional[float] = None) -> float:
        self.failures += 1
        recent = self._clock() - self._last_success < self.policy.flaky_window
        return self.policy.wait_after(self.failures, retry_after, self._rand, flaky=recent)

    def succeeded(self) -> None:
        self.failures = 0
        self._last_success = self._clock()


def parse_retry_after(value: Optional[str], now: Optional[_dt.datetime] = None) -> Optional[float]:
    """Seconds from a ``Retry-After`` value: delta-seconds or an HTTP-date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer
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
    #: PostHog answered with a final 4xx: sending the same bytes again cannot help.
    REJECTED = "rejected"
    #: 401/403: the project key is wrong.
    UNAUTHORIZED = "unauthorized"
    #: 413: the request is too large; smaller requests may pass.
    TOO_LARGE = "too_large"


class Verdict(NamedTuple):
    """What one attempt came to: a final ``outcome``, or None to try again later."""

    outcome: Optional[Outcome]
    status: Optional[int]
    detail: str = ""
    retry_after: Optional[float] = None


def judge_status(response: Response, policy: RetryPolicy) -> Verdict:
    """The verdict on a non-success HTTP status, shared by both protocols."""
    status = response.status
    if status in (401, 403):
        return Verdict(Outcome.UNAUTHORIZED, status, "HTTP %d" % status)
    if status == 413:
        return Verdict(Outcome.TOO_LARGE, status, "HTTP 413")
    if policy.is_retryable(status):
        return Verdict(None, status, "HTTP %d" % status, parse_retry_after(response.headers.get("Retry-After")))
    return Verdict(Outcome.REJECTED, status, describe(response))


def describe(response: Response) -> str:
    """A one-line summary of an answer; the caller scrubs the key from it (a page may echo it)."""
    text = " ".join(response.text.split())
    return "HTTP %d %s" % (response.status, text[:300])
