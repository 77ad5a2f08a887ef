"""What ``export()`` hands to the dispatcher thread, and how it becomes encoded events.

The SDK's worker must return at once, so a batch waits in a bounded ``Handoff`` and the
dispatcher thread encodes it. Three kinds of batch arrive, each a small class that knows how
to become an ``Encoded`` (no type switch on the receiving side):

- ``Records``: the SDK's log records or spans, read and mapped here;
- ``MappedEvents``: PostHog events the gateway mapped on its request threads;
- ``Encoded``: a batch the SDK's worker encoded itself because the thread was behind.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable, Deque, Dict, List, NamedTuple, Protocol, Sequence, Tuple

from .._hooks import DeliveryError, Hooks
from .._log import count_drop, warn_limited
from .._mapping import Defaults, Operation, to_posthog_events
from .client import too_large
from .encoding import EncodedBatch
from .sequence import SequenceTracker

#: Records the hand-off holds before ``export()`` encodes batches itself (the thread is behind).
HANDOFF_MAX_RECORDS = 16384

Read = Callable[[Sequence[Any]], Tuple[List[Operation], List[int]]]


class Encoded(NamedTuple):
    batch: EncodedBatch
    numbers: List[int]  # the sequence numbers of the records it holds, judged in hand-off order

    def encoded(self, encoder: "Encoder") -> "Encoded":
        return self


class Arrival(Protocol):
    """What waits in the hand-off: something the dispatcher thread can encode."""

    def encoded(self, encoder: "Encoder") -> Encoded: ...


class Batch(Arrival, Protocol):
    """What ``hand_off`` takes: a batch of some number of records, refusable whole."""

    def __len__(self) -> int: ...

    def refused(self, encoder: "Encoder", tracker: SequenceTracker) -> int:
        """How many operations refusing it drops (not counted already)."""


class Records:
    """The SDK's records (log records or spans) as ``export()`` got them."""

    __slots__ = ("items",)

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def encoded(self, encoder: "Encoder") -> Encoded:
        return encoder.records(self.items)

    def refused(self, encoder: "Encoder", tracker: SequenceTracker) -> int:
        operations, numbers = encoder.read(self.items)
        # Numbered records the shutdown counted already (never seen by then) are not counted again.
        return len(operations) - len(numbers) + tracker.refused(numbers)


class MappedEvents(List[Dict[str, Any]]):
    """PostHog events mapped by the caller (the gateway maps on its request threads, to say
    at once which records it refused): ``hand_off`` takes them as they are, no ``read``."""

    def encoded(self, encoder: "Encoder") -> Encoded:
        return encoder.events(self)

    def refused(self, encoder: "Encoder", tracker: SequenceTracker) -> int:
        return len(self)


class Encoder:
    """Records to PostHog events (``read``, then the mapping), through the application's
    hooks, to JSON; what cannot go is counted and said here."""

    def __init__(self, read: Read, defaults: Defaults, hooks: Hooks) -> None:
        self.read = read
        self._defaults = defaults
        self._hooks = hooks

    def records(self, items: Sequence[Any]) -> Encoded:
        operations, numbers = self.read(items)
        events, skipped = to_posthog_events(operations, self._defaults)
        for problem in skipped:
            count_drop(problem.reason)
            warn_limited("skip:" + problem.reason, "posthog_otel: record dropped: %s", problem)
        return self._encode(events, numbers)

    def events(self, events: List[Dict[str, Any]]) -> Encoded:
        return self._encode(events, [])  # the gateway's: mapped (and refusals said) already

    def _encode(self, events: List[Dict[str, Any]], numbers: List[int]) -> Encoded:
        events = self._hooks.apply(events)
        batch, oversized = EncodedBatch.encode(events)
        if oversized:
            too_large(len(oversized), oversized[0].get("event"))
            self._hooks.report(DeliveryError("too_large", "over PostHog's 900 KiB per event"), lambda: oversized)
        return Encoded(batch, numbers)


class Handoff:
    """Batches waiting for the dispatcher thread, oldest first (under its board's lock)."""

    def __init__(self) -> None:
        self._queue: Deque[Tuple[float, Arrival]] = deque()
        #: Records waiting (not counting batches the caller encoded itself).
        self.records = 0

    def __bool__(self) -> bool:
        return bool(self._queue)

    def put(self, born: float, batch: Batch) -> bool:
        """Queue ``batch``; False (not queued) when the hand-off is full: the thread is behind."""
        if self.records + len(batch) > HANDOFF_MAX_RECORDS:
            return False
        self._queue.append((born, batch))
        self.records += len(batch)
        return True

    def put_encoded(self, born: float, encoded: Encoded) -> None:
        self._queue.append((born, encoded))  # in order: its numbers are judged in turn

    def take(self) -> List[Tuple[float, Arrival]]:
        taken = list(self._queue)
        self._queue.clear()
        self.records = 0
        return taken


def count_refused(refused: int) -> None:
    if refused:
        count_drop("after_shutdown", refused)
        warn_limited("export_after_shutdown", "posthog_otel: %d operation(s) exported after shutdown; dropped",
                     refused)  # fmt: skip


def count_never_exported(lost: int) -> None:
    if lost:
        count_drop("after_shutdown", lost)
        warn_limited(
            "never_exported",
            "posthog_otel: %d operation(s) made while the pipeline shut down never reached the exporter "
            "(the OpenTelemetry batch processor had stopped); dropped", lost, level=logging.ERROR,
        )  # fmt: skip


def count_losses(lost: int) -> None:
    if lost:
        count_drop("otel_queue_full", lost)
        warn_limited(
            "otel_queue_full",
            "posthog_otel: %d operation(s) were dropped by the OpenTelemetry batch processor before they "
            "reached the exporter (its queue was full); raise its max_queue_size (OTEL_BLRP_MAX_QUEUE_SIZE)",
            lost, level=logging.ERROR,
        )  # fmt: skip
