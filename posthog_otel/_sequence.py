"""Counting what the OTel SDK dropped before the exporter saw it.

The SDK's batch processor drops the *oldest* record when its queue is full, with one log
line and no count anyone can read.  Every record our operations emit carries a sequence
number (``posthog.seq``, one counter per process), so the exporter sees drops as gaps.

Records from threads that emit at the same moment may reach the queue out of order, so a
gap is only confirmed one batch later: a record that fills it meanwhile was late, not lost.
Numbers below the tracker's start (emitted before this exporter existed, or in the parent
before a fork) are not this exporter's to judge.
"""

from __future__ import annotations

import threading
from typing import Iterable, List


class SequenceTracker:
    def __init__(self, start: int) -> None:
        self._lock = threading.Lock()
        self.reset(start)

    def reset(self, start: int) -> None:
        self._expected = start
        self._start = start
        self._gaps: List[List[int]] = []  # [first, last, late arrivals, age in batches]

    def after_fork(self, start: int) -> None:
        self._lock = threading.Lock()
        self.reset(start)

    def saw(self, numbers: Iterable[int]) -> int:
        """Note a batch's sequence numbers; returns how many records are now known lost."""
        with self._lock:
            lost = self._confirm(older_than=1)
            for number in sorted(n for n in numbers if n >= self._start):
                if number == self._expected:
                    self._expected += 1
                elif number > self._expected:
                    self._gaps.append([self._expected, number - 1, 0, 0])
                    self._expected = number + 1
                else:
                    self._late(number)
            return lost

    def settle(self) -> int:
        """Confirm every open gap (at a flush or shutdown, when nothing more is in flight)."""
        with self._lock:
            return self._confirm(older_than=-1)

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
                lost += max(gap[1] - gap[0] + 1 - gap[2], 0)
            else:
                gap[3] += 1
                kept.append(gap)
        self._gaps = kept
        return lost
