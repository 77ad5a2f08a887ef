"""The memory queue alone: bytes and events counted, one pop loop for every way out."""

from __future__ import annotations

from posthog_otel._delivery.encoding import EncodedBatch
from posthog_otel._delivery.memory import MemoryQueue, Waiting, everything, within


def _waiting(size: int, count: int = 1, born: float = 0.0) -> Waiting:
    return Waiting(EncodedBatch.of([b"x" * size], count), born)


def test_bytes_and_events_follow_what_goes_in_and_out():
    memory = MemoryQueue([_waiting(10, 2), _waiting(20, 3)])
    assert (len(memory), memory.bytes, memory.events) == (2, 30, 5)
    memory.extend([_waiting(5)])
    taken = memory.pop(lambda w: w.batch.size >= 10)  # from the head while it holds
    assert [w.batch.size for w in taken] == [10, 20]
    assert (len(memory), memory.bytes, memory.events) == (1, 5, 1)
    memory.clear()
    assert not memory and (memory.bytes, memory.events) == (0, 0)


def test_one_request_takes_the_oldest_that_fit_and_always_one():
    memory = MemoryQueue([_waiting(40), _waiting(40), _waiting(40)])
    assert [w.batch.size for w in memory.pop(within(100))] == [40, 40]  # 120 would not fit
    assert memory.bytes == 40
    huge = MemoryQueue([_waiting(500), _waiting(1)])
    assert [w.batch.size for w in huge.pop(within(100))] == [500]  # alone, whatever its size


def test_a_request_budget_is_strictly_under_the_limit():
    memory = MemoryQueue([_waiting(50), _waiting(50)])
    assert len(memory.pop(within(100))) == 1  # 100 is not under 100


def test_a_pop_that_acts_on_the_head_stops_at_its_first_failure():
    memory = MemoryQueue([_waiting(1, born=t) for t in range(5)])
    written = []

    def write(waiting: Waiting) -> bool:
        if len(written) == 3:
            return False  # the disk refuses the fourth: it and those behind it stay
        written.append(waiting.born)
        return True

    assert [w.born for w in memory.pop(write)] == [0, 1, 2] == written
    assert [w.born for w in memory.pop(everything)] == [3, 4]


def test_the_condition_sees_the_counts_of_what_is_left():
    memory = MemoryQueue([_waiting(10) for _ in range(10)])
    memory.pop(lambda w: memory.bytes > 35)  # bounded: the oldest go until it fits
    assert memory.bytes == 30 and len(memory) == 3
