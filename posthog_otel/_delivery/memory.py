"""Encoded events waiting in memory, oldest first, their bytes and events counted.

The dispatcher thread owns a ``MemoryQueue``; other threads only read ``bytes`` and
``events`` (the stats' gauges). Everything leaves by ``pop``: into a request, into the
spool, or counted out when memory is full.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Deque, Iterable, List, NamedTuple

from .encoding import EncodedBatch

#: Encoded events waiting in memory: past it they are spilled (spool on) or the oldest dropped.
MEMORY_MAX_BYTES = 16 * 1024 * 1024


class Waiting(NamedTuple):
    batch: EncodedBatch
    born: float  # when the exporter got it (monotonic)


def within(limit: int) -> Callable[[Waiting], bool]:
    """A ``pop`` condition: the oldest batches that fit one request body under ``limit``
    bytes (always at least one, whatever its size)."""
    size = 0
    taken = 0

    def fits(waiting: Waiting) -> bool:
        nonlocal size, taken
        if taken and size + waiting.batch.size >= limit:
            return False
        size += waiting.batch.size
        taken += 1
        return True

    return fits


def everything(waiting: Waiting) -> bool:
    return True


class MemoryQueue:
    def __init__(self, waiting: Iterable[Waiting] = ()) -> None:
        self._queue: Deque[Waiting] = deque()
        self.bytes = 0
        self.events = 0
        self.extend(waiting)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def __len__(self) -> int:
        return len(self._queue)

    def oldest(self) -> Waiting:
        return self._queue[0]

    def extend(self, waiting: Iterable[Waiting]) -> None:
        for item in waiting:
            self._queue.append(item)
            self.bytes += item.batch.size
            self.events += item.batch.count

    def pop(self, keep: Callable[[Waiting], bool]) -> List[Waiting]:
        """Take batches from the head while ``keep(head)`` says so (it may act on the head
        first: write it to the spool, and say whether that worked)."""
        taken: List[Waiting] = []
        while self._queue and keep(self._queue[0]):
            item = self._queue.popleft()
            self.bytes -= item.batch.size
            self.events -= item.batch.count
            taken.append(item)
        return taken

    def clear(self) -> None:
        self._queue.clear()
        self.bytes = self.events = 0
