"""Self-observability: what the exporter did, as numbers and as OTel metrics.

``PostHogLogExporter.stats()`` returns a snapshot; when a MeterProvider is configured the
same numbers are observable instruments of the meter ``posthog_otel``, read at collection
time (nothing is recorded on the hot path; only the spool gauges read the spool directory).
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from typing import Any, Callable, Dict, Iterable, List, Optional

from . import _state
from ._log import copy_counter, drop_counts  # drop_counts: the process's, for the meter


class Stats:
    def __init__(
        self, spool: Any = None, gauges: Callable[[], Dict[str, int]] = dict, upstream: "Optional[Counter[str]]" = None
    ) -> None:
        self._lock = threading.Lock()
        self._counts: "Counter[str]" = Counter()
        #: This exporter's drops, by reason (its threads count into it: ``_log.attribute_drops_to``).
        self.drops: "Counter[str]" = Counter()
        #: The drops at the call of the operations it serves (its emitter's), shown with its own.
        self.upstream = upstream
        self.spool = spool
        self._gauges = gauges  # what waits in memory, read on demand

    def after_fork(self) -> None:
        """A forked child counts its own deliveries, with a lock no parent thread holds."""
        self._lock = threading.Lock()
        self._counts = Counter()
        self.drops = Counter()

    def add(self, name: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._counts[name] += n

    def counts(self) -> Dict[str, int]:
        """The counters alone: no I/O (the spool depth reads its directory)."""
        with self._lock:
            counts = dict(self._counts)
        return {key: counts.get(key, 0) for key in ("exported", "retried", "spooled", "drained")}

    def snapshot(self) -> Dict[str, Any]:
        dropped = Counter(copy_counter(self.drops))
        if self.upstream is not None:
            dropped.update(copy_counter(self.upstream))
        snapshot: Dict[str, Any] = {**self.counts(), "dropped": dict(dropped), **self._gauges()}
        try:
            depth = self.spool.depth() if self.spool is not None else None
        except OSError:
            depth = None
        snapshot.update(
            spool_batches=depth.batches if depth else 0,
            spool_bytes=depth.bytes if depth else 0,
            spool_oldest_age_seconds=round(depth.oldest_age, 3) if depth else 0.0,
        )
        return snapshot


_registered: "weakref.WeakSet[Stats]" = weakref.WeakSet()
_registration_lock = threading.Lock()


@_state.at_fork
def after_fork() -> None:
    global _registration_lock
    _registration_lock = threading.Lock()


def register_metrics(stats: Stats) -> None:
    """Count ``stats`` in the meter's instruments, created once per process on the global
    MeterProvider (a no-op until one is set); several exporters add up."""
    with _registration_lock:
        first = not _registered
        _registered.add(stats)
    if first:
        _create_instruments()


def _create_instruments() -> None:
    from opentelemetry import metrics

    meter = metrics.get_meter("posthog_otel")

    def counter(key: str) -> Callable[[Any], Iterable[Any]]:
        return lambda options: [metrics.Observation(sum(stats.counts()[key] for stats in list(_registered)))]

    def spool(measure: Callable[[List[Any]], float]) -> Callable[[Any], Iterable[Any]]:
        def observe(options: Any) -> Iterable[Any]:
            depths = [stats.spool.depth() for stats in list(_registered) if stats.spool is not None]
            return [metrics.Observation(measure(depths))]

        return observe

    def dropped(options: Any) -> Iterable[Any]:
        return [metrics.Observation(n, {"reason": reason}) for reason, n in drop_counts().items()]

    meter.create_observable_counter("posthog_otel.events.exported", [counter("exported")], unit="{event}",
                                    description="Events PostHog accepted")  # fmt: skip
    meter.create_observable_counter("posthog_otel.requests.retried", [counter("retried")], unit="{request}",
                                    description="Request attempts after the first")  # fmt: skip
    meter.create_observable_counter("posthog_otel.events.spooled", [counter("spooled")], unit="{event}",
                                    description="Events written to the spool")  # fmt: skip
    meter.create_observable_counter("posthog_otel.events.dropped", [dropped], unit="{event}",
                                    description="Operations or events dropped, by reason")  # fmt: skip
    meter.create_observable_gauge("posthog_otel.spool.batches", [spool(lambda ds: sum(d.batches for d in ds))],
                                  unit="{batch}", description="Batches waiting in the spool")  # fmt: skip
    meter.create_observable_gauge("posthog_otel.spool.bytes", [spool(lambda ds: sum(d.bytes for d in ds))],
                                  unit="By", description="Size of the spool")  # fmt: skip
    meter.create_observable_gauge("posthog_otel.spool.oldest_age", [spool(lambda ds: max([d.oldest_age for d in ds] or [0.0]))],
                                  unit="s", description="Age of the oldest spooled batch")  # fmt: skip
