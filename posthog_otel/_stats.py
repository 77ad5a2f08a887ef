"""Self-observability: what the exporter did, as numbers and as OTel metrics.

``PostHogLogExporter.stats()`` returns a snapshot; when a MeterProvider is configured the
same numbers are observable instruments of the meter ``posthog_otel`` (read at collection
time from the snapshot, so nothing is recorded on the hot path).
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from typing import Any, Callable, Dict, Iterable

from ._log import drop_counts


class Stats:
    def __init__(self, spool: Any = None) -> None:
        self._lock = threading.Lock()
        self._counts: Counter = Counter()
        self.spool = spool

    def add(self, name: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._counts[name] += n

    def snapshot(self) -> Dict[str, Any]:
        with self._lock:
            counts = dict(self._counts)
        snapshot: Dict[str, Any] = {
            "exported": counts.get("exported", 0),
            "retried": counts.get("retried", 0),
            "spooled": counts.get("spooled", 0),
            "drained": counts.get("drained", 0),
            "dropped": drop_counts(),
            "spool_batches": 0,
            "spool_bytes": 0,
            "spool_oldest_age_seconds": 0.0,
        }
        if self.spool is not None:
            depth = self.spool.depth()
            snapshot.update(
                spool_batches=depth.batches, spool_bytes=depth.bytes, spool_oldest_age_seconds=round(depth.oldest_age, 3)
            )
        return snapshot


_registered: "weakref.WeakSet[Stats]" = weakref.WeakSet()
_registration_lock = threading.Lock()


def register_metrics(stats: Stats) -> None:
    """Count ``stats`` in the meter's instruments, created once per process on the global
    MeterProvider (a no-op until one is set); several exporters add up."""
    with _registration_lock:
        first = not _registered
        _registered.add(stats)
    if first:
        _create_instruments()


def _total(key: str) -> Any:
    return sum(stats.snapshot()[key] for stats in list(_registered))


def _create_instruments() -> None:
    from opentelemetry import metrics

    meter = metrics.get_meter("posthog_otel")

    def observe(key: str) -> Callable[[Any], Iterable[Any]]:
        return lambda options: [metrics.Observation(_total(key))]

    def dropped(options: Any) -> Iterable[Any]:
        return [metrics.Observation(n, {"reason": reason}) for reason, n in drop_counts().items()]

    meter.create_observable_counter("posthog_otel.events.exported", [observe("exported")], unit="{event}",
                                    description="Events PostHog accepted")  # fmt: skip
    meter.create_observable_counter("posthog_otel.requests.retried", [observe("retried")], unit="{request}",
                                    description="Request attempts after the first")  # fmt: skip
    meter.create_observable_counter("posthog_otel.events.spooled", [observe("spooled")], unit="{event}",
                                    description="Events written to the spool")  # fmt: skip
    meter.create_observable_counter("posthog_otel.events.dropped", [dropped], unit="{event}",
                                    description="Operations or events dropped, by reason")  # fmt: skip
    meter.create_observable_gauge("posthog_otel.spool.batches", [observe("spool_batches")], unit="{batch}",
                                  description="Batches waiting in the spool")  # fmt: skip
    meter.create_observable_gauge("posthog_otel.spool.bytes", [observe("spool_bytes")], unit="By",
                                  description="Size of the spool")  # fmt: skip
    meter.create_observable_gauge(
        "posthog_otel.spool.oldest_age", [lambda options: [metrics.Observation(
            max([stats.snapshot()["spool_oldest_age_seconds"] for stats in list(_registered)] or [0.0]))]],
        unit="s", description="Age of the oldest spooled batch",
    )  # fmt: skip
