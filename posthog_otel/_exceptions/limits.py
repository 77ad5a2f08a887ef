"""Bounds on exception events: a token bucket per exception type and location, and duplicates.

PostHog's Python SDK 7.91.1 rate-limits only autocaptured exceptions (its ``sys.excepthook``
and ``threading.excepthook``), only when asked (``enable_exception_autocapture_rate_limiting``,
off by default), with a token bucket per exception *type* (50 at once, then 10 every 10 s),
and says what it skipped at INFO level without counting it. Here every way an exception
reaches PostHog is bounded (``capture_exception``, autocapture, the integrations, and OTel's
records), always, with one bucket per type *and* place (a hot loop failing in one spot
does not silence the same type raised elsewhere), the same budget, a bounded number of
buckets, and every suppressed exception counted (``drop_counts()["exception_rate_limited"]``)
and said (rate-limited).

``Recent`` remembers the exceptions sent within a trace, so that the same exception seen
again by OpenTelemetry (``record_exception`` on the server span after the middleware
captured it, or on each span it escapes through) becomes one event, not several.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Hashable, Tuple

from .. import _state

#: PostHog's autocapture defaults: a burst of 50 per key, then 10 more every 10 seconds.
BURST = 50
REFILL = 10
REFILL_SECONDS = 10.0
#: Buckets kept; past it the longest-unused full bucket is forgotten, else one shared bucket is used.
MAX_KEYS = 1024
#: (trace, type, message) triples remembered to fold duplicates.
MAX_RECENT = 4096


def configure(bucket_size: Any = None, refill_rate: Any = None, refill_seconds: Any = None) -> None:
    """PostHog's ``exception_autocapture_bucket_size`` (clamped to 0-100, as PostHog's),
    ``exception_autocapture_refill_rate`` and ``exception_autocapture_refill_interval_seconds``."""
    global BURST, REFILL, REFILL_SECONDS
    if bucket_size is not None:
        BURST = min(max(int(bucket_size), 0), 100)
    if refill_rate is not None:
        REFILL = max(int(refill_rate), 0)
    if refill_seconds is not None and float(refill_seconds) > 0:
        REFILL_SECONDS = float(refill_seconds)


class RateLimiter:
    """``allow(key)``: True while ``key``'s bucket has a token (one is taken). Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: "OrderedDict[Hashable, Tuple[float, float]]" = OrderedDict()  # key -> (tokens, last refill)
        self._overflow: Tuple[float, float] = (float(BURST), 0.0)
        self._lock = threading.Lock()

    def allow(self, key: Hashable) -> bool:
        with self._lock:
            now = self.clock()
            found = self._buckets.get(key)
            if found is None and len(self._buckets) >= MAX_KEYS and not self._forget_one(now):
                tokens, last = self._refill(self._overflow, now)  # too many places at once: they share
                allowed = tokens >= 1
                self._overflow = (tokens - 1 if allowed else tokens, last)
                return allowed
            tokens, last = (float(BURST), now) if found is None else self._refill(found, now)
            allowed = tokens >= 1
            self._buckets[key] = (tokens - 1 if allowed else tokens, last)
            self._buckets.move_to_end(key)
            return allowed

    @staticmethod
    def _refill(bucket: Tuple[float, float], now: float) -> Tuple[float, float]:
        """Whole refill intervals only, the remainder carried over (as PostHog's bucket does)."""
        tokens, last = bucket
        intervals = int((now - last) // REFILL_SECONDS)
        if intervals <= 0:
            return bucket
        return min(tokens + intervals * REFILL, float(BURST)), last + intervals * REFILL_SECONDS

    def _forget_one(self, now: float) -> bool:
        key, bucket = next(iter(self._buckets.items()))
        if self._refill(bucket, now)[0] < BURST:
            return False  # even the longest-unused bucket is still in use: forgetting it would reset it
        del self._buckets[key]
        return True

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._overflow = (float(BURST), 0.0)


class Recent:
    """A bounded memory of (trace id, type, message): ``first(key)`` is True the first time only."""

    def __init__(self) -> None:
        self._seen: "OrderedDict[Hashable, None]" = OrderedDict()
        self._lock = threading.Lock()

    def first(self, key: Hashable) -> bool:
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return False
            self._seen[key] = None
            if len(self._seen) > MAX_RECENT:
                self._seen.popitem(last=False)
            return True

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()


#: One budget for what the application hands over (capture_exception, autocapture, the
#: integrations), one for what the exporters and the gateway read from OTel's records.
calls = RateLimiter()
records = RateLimiter()
#: Exceptions already sent within a trace, by either road.
recent = Recent()


def after_fork() -> None:
    """In a forked child: locks held by a parent thread at fork time would stay held."""
    for limiter in (calls, records):
        limiter._lock = threading.Lock()
    recent._lock = threading.Lock()


_state.at_fork(after_fork)
