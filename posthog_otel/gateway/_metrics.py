"""What the gateway took and refused, as numbers and as instruments of the ``posthog_otel`` meter.

Delivery (events exported, spooled, dropped by reason, the spool's depth) is reported by
each project's dispatcher through the same meter; these are the receiving side's numbers.
Observable instruments, read at collection time: nothing is recorded per request but a
counter increment under a lock.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from typing import Any, Callable, Dict, Iterable

#: Record outcomes: ``accepted`` (an operation handed to delivery), ``rejected`` (an operation
#: the mapping refused, reported in ``partial_success``), ``ignored`` (not a PostHog operation).
OUTCOMES = ("accepted", "rejected", "ignored")


class GatewayCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: "Counter[str]" = Counter()
        self.requests: "Counter[int]" = Counter()  # by HTTP status

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self.records, self.requests = Counter(), Counter()

    def request(self, status: int) -> None:
        with self._lock:
            self.requests[status] += 1

    def saw(self, accepted: int, rejected: int, ignored: int) -> None:
        with self._lock:
            self.records.update(accepted=accepted, rejected=rejected, ignored=ignored)

    def snapshot(self) -> Dict[str, Any]:
        with self._lock:
            return {
                "records": {outcome: self.records.get(outcome, 0) for outcome in OUTCOMES},
                "requests": {str(status): n for status, n in sorted(self.requests.items())},
            }


_registered: "weakref.WeakSet[GatewayCounters]" = weakref.WeakSet()
_lock = threading.Lock()


def register(counters: GatewayCounters) -> None:
    """Count ``counters`` in the meter's instruments, created once per process on the global
    MeterProvider (a no-op until one is set); several gateways in one process add up."""
    with _lock:
        first = not _registered
        _registered.add(counters)
    if first:
        _create_instruments()


def _total(kind: str) -> "Counter[str]":
    total: "Counter[str]" = Counter()
    for counters in list(_registered):
        total.update(counters.snapshot()[kind])
    return total


def _create_instruments() -> None:
    from opentelemetry import metrics

    meter = metrics.get_meter("posthog_otel")

    def observe(kind: str, label: str) -> Callable[[Any], Iterable[Any]]:
        def read(options: Any) -> Iterable[Any]:
            return [metrics.Observation(n, {label: int(key) if kind == "requests" else key})
                    for key, n in _total(kind).items()]  # fmt: skip

        return read

    meter.create_observable_counter("posthog_otel.gateway.records", [observe("records", "outcome")],
                                    unit="{record}", description="OTLP log records received, by outcome")  # fmt: skip
    meter.create_observable_counter("posthog_otel.gateway.requests", [observe("requests", "http.response.status_code")],
                                    unit="{request}", description="OTLP/HTTP requests answered, by status")  # fmt: skip
