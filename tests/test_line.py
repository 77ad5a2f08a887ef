"""The line alone (memory, then the spool) on a real spool directory: order, spilling, bounds."""

from __future__ import annotations

import json

from posthog_otel import _log
from posthog_otel._config import Settings
from posthog_otel._delivery.encoding import EncodedBatch, encode_event
from posthog_otel._delivery.line import Line
from posthog_otel._delivery.memory import MEMORY_MAX_BYTES, Waiting
from posthog_otel._delivery.spool_access import SPOOL_RETRY, SpoolAccess, open_spool
from posthog_otel._stats import Stats

from .conftest import API_KEY


def _line(tmp_path, spool=True, **settings):
    resolved = Settings.resolve(api_key=API_KEY, host="http://127.0.0.1:9", spool=spool, spool_dir=str(tmp_path),
                                **settings)  # fmt: skip
    disk = open_spool(resolved)
    access = SpoolAccess(disk, Stats(disk))
    return Line(resolved, access), access


def _event(n):
    return {"event": "$set", "distinct_id": "person", "uuid": "0190f4c1-0000-7000-8000-%012d" % n,
            "timestamp": "2024-01-01T00:00:00+00:00", "properties": {}, "$set": {"n": n}}  # fmt: skip


def _batch(*numbers):
    return EncodedBatch.of([encode_event(_event(n)) for n in numbers], len(numbers))


def _numbers(batch):
    return [e["$set"]["n"] for e in batch.events()]


def test_memory_goes_next_while_the_spool_holds_nothing(tmp_path):
    line, _ = _line(tmp_path)
    line.enqueue([Waiting(_batch(1, 2), 5.0), Waiting(_batch(3), 6.0)])
    chosen, retry_at = line.next(10.0)
    assert chosen is not None and retry_at is None
    assert _numbers(chosen.batch) == [1, 2, 3] and chosen.claim is None and chosen.born == 5.0
    assert line.next(10.0) == (None, None)


def test_what_waits_too_long_is_spilled_in_order_and_new_batches_queue_behind(tmp_path):
    line, spool = _line(tmp_path, spool_after=1.0)
    line.enqueue([Waiting(_batch(1), 0.0), Waiting(_batch(2), 0.5)])
    assert line.spill_due(0.9, None) is None
    assert line.spill_due(1.0, None) == "late"
    assert line.spill_all(None, "late") and not line.memory and spool.first
    line.enqueue(line.arrivals(_batch(3), 2.0))  # behind the spool: straight to disk
    assert not line.memory
    chosen, _ = line.next(3.0)
    assert chosen is not None and chosen.claim is not None and _numbers(chosen.batch) == [1, 2, 3]


def test_a_shipment_in_memory_is_spilled_first_and_becomes_a_claim(tmp_path, server):
    from posthog_otel._delivery.client import Shipment
    from posthog_otel._delivery.retry import RetryPolicy

    line, _ = _line(tmp_path)
    shipment = Shipment(_batch(1), None, 0.0, line._settings, RetryPolicy(), lambda *a: None)
    line.enqueue([Waiting(_batch(2), 0.0)])
    assert line.spill_all(shipment) and shipment.claim is not None and not shipment.in_memory
    shipment.claim.release()
    chosen, _ = line.next(1.0)
    assert chosen is not None and _numbers(chosen.batch) == [1, 2]


def test_without_a_spool_memory_is_bounded_and_the_oldest_counted_out(tmp_path):
    line, spool = _line(tmp_path, spool=False, spool_max_age=60)
    assert not spool.on and line.spill_due(0.0, None) is None
    big = EncodedBatch.of([b"x" * (MEMORY_MAX_BYTES // 4)], 1)
    line.enqueue([Waiting(big, float(n)) for n in range(5)])
    line.limit_memory(10.0, None)
    assert len(line.memory) == 4 and line.memory.oldest().born == 1.0
    line.limit_memory(61.5, None)  # older than spool_max_age: out too
    assert len(line.memory) == 3
    assert _log.drop_counts() == {"memory_full": 2}


def test_a_spool_that_fails_is_left_alone_for_a_while(tmp_path):
    line, spool = _line(tmp_path)
    spool.failed(OSError("disk full"), 100.0)
    assert not spool.usable(100.0 + SPOOL_RETRY - 0.1) and spool.usable(100.0 + SPOOL_RETRY)
    line.enqueue([Waiting(_batch(1), 100.0)])
    assert line.spill_due(101.0, None) is None  # nowhere to spill to: memory keeps it
    assert spool.down_until in line.wake_times(101.0, None)


def test_another_processes_batches_go_first(tmp_path):
    line, spool = _line(tmp_path)
    other = open_spool(line._settings)
    other.append(_batch(1))  # a sibling's (or a past run's) batch
    line.enqueue([Waiting(_batch(2), 0.0)])
    spool.poll(0.0)
    assert spool.first and line.spill_due(0.0, None) == "behind"
    line.spill_all(None, "behind")
    chosen, _ = line.next(0.0)
    assert chosen is not None and _numbers(chosen.batch) == [1, 2]
    chosen.claim.done()
    assert line.next(0.0) == (None, None) and not spool.first
    assert json.loads(b"[" + chosen.batch.body() + b"]")[0]["$set"] == {"n": 1}
