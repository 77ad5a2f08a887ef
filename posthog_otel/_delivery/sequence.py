"""Counting what the OTel SDK dropped, or never exported, before the exporter saw it.

The SDK's batch processor drops the *oldest* record when its queue is full, with one log
line and no count anyone can read; after its shutdown it drops every record without a word.
Every record our operations emit carries a sequence number (``posthog.seq``, one counter per
emitter), so the exporter sees drops as gaps.

Records from threads that emit at the same moment may reach the queue out of order, so a
gap is only confirmed one batch later: a record that fills it meanwhile was late, not lost.
Numbers below the tracker's start (emitted before this exporter existed, or in the parent
before a fork) are not this exporter's to judge. Numbers the emitter took without emitting
a record (``unused``: a checkpoint, a refusal) are no gap.

**At the last shutdown** the emitter refuses operations from then on and hands the exporter
a mark: every number below it belongs to a record that was either seen here or is lost (the
processor shut down under a thread still emitting, or its final export ran before the
record reached the queue). ``close(mark)`` counts those; records refused by the exporter
itself afterwards are not counted twice (``refused``).
"""

from __future__ import annotations

import threading
from typing import AbstractSet, Iterable, List, Optional, Tuple


class SequenceTracker:
    def __init__(self, start: int, unused: AbstractSet[int] = frozenset()) -> None:
        self._lock = threading.Lock()
        self._unused = unused  # the emitter's own set: read, never written, here
        self.reset(start)

    def reset(self, start: int) -> None:
        self._expected = start
        self._start = start
        self._gaps: List[List[int]] = []  # [first, last, late arrivals, age in batches]
        self._closed_at: Optional[int] = None

    def after_fork(self, start: int) -> None:
        self._lock = threading.Lock()
        self.reset(start)

    def saw(self, numbers: Iterable[int]) -> int:
        """Note a batch's sequence numbers; returns how many records are now known lost."""
        with self._lock:
            lost = self._confirm(older_than=1)
            self._note(numbers)
            return lost

    def settle(self) -> int:
        """Confirm every open gap (at a flush or shutdown, when nothing more is in flight)."""
        with self._lock:
            return self._confirm(older_than=-1)

    def close(self, mark: Optional[int]) -> Tuple[int, int]:
        """At the last shutdown: (records lost in gaps, records below ``mark`` never seen). An
        exporter that never saw one of the emitter's records (not on its provider) counts none."""
        with self._lock:
            lost = self._confirm(older_than=-1)
            if mark is None or mark <= self._expected or self._expected == self._start:
                return lost, 0
            never = mark - self._expected - sum(1 for n in list(self._unused) if self._expected <= n < mark)
            self._expected = mark
            self._closed_at = mark
            return lost, max(never, 0)

    def refused(self, numbers: Iterable[int]) -> int:
        """Numbers of records the exporter refused (shut down): how many ``close`` did not
        count already. The rest are noted as seen, so ``close`` will not count them."""
        with self._lock:
            numbers = list(numbers)
            if self._closed_at is None:
                self._note(numbers)
                return len(numbers)
            return sum(1 for n in numbers if not self._start <= n < self._closed_at)

    def _note(self, numbers: Iterable[int]) -> None:
        for number in sorted(n for n in numbers if n >= self._start):
            if number == self._expected:
                self._expected += 1
            elif number > self._expected:
                self._gaps.append([self._expected, number - 1, 0, 0])
                self._expected = number + 1
            else:
                self._late(number)

    def _late(self, number: int) -> None:
        for gap in self._gaps:
            if gap[0] <= number <= gap[1]:
                gap[2] += 1
                return

    def _confirm(self, older_than: int) -> int:
        lost = 0
        kept = []
        for gap in self._gaps:
            if gap[3] >= older_than:
                unused = sum(1 for n in list(self._unused) if gap[0] <= n <= gap[1])
                lost += max(gap[1] - gap[0] + 1 - gap[2] - unused, 0)
            else:
                gap[3] += 1
                kept.append(gap)
        self._gaps = kept
        return lost
