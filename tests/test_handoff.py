"""The hand-off alone: its bound, its order, and the three kinds of batch becoming events."""

from __future__ import annotations

from posthog_otel import _log
from posthog_otel import _schema as schema
from posthog_otel._delivery import handoff as _handoff
from posthog_otel._delivery.encoding import EncodedBatch
from posthog_otel._delivery.handoff import Encoded, Encoder, Handoff, MappedEvents, Records
from posthog_otel._delivery.sequence import SequenceTracker
from posthog_otel._hooks import Hooks
from posthog_otel._mapping import Defaults, Operation

DEFAULTS = Defaults(library={"$lib": "posthog-otel"}, system={}, disable_geoip=True)


def read(items):
    """Our records here: (distinct id, properties, sequence number)."""
    operations = [Operation(schema.SET, {schema.DISTINCT_ID: who}, properties) for who, properties, _ in items]
    return operations, [number for _, _, number in items]


def encoder(**hooks):
    return Encoder(read, DEFAULTS, Hooks(**hooks))


def test_records_are_read_mapped_and_encoded_with_their_numbers():
    encoded = Records([("u1", {"a": 1}, 0), ("u2", {"b": 2}, 1)]).encoded(encoder())
    assert encoded.numbers == [0, 1]
    assert [(e["event"], e["distinct_id"], e["$set"]) for e in encoded.batch.events()] == [
        ("$set", "u1", {"a": 1}), ("$set", "u2", {"b": 2})]  # fmt: skip


def test_a_record_that_cannot_be_an_event_is_counted_and_the_rest_go_on():
    encoded = Records([("u1", {}, 0), ("u2", {"b": 2}, 1)]).encoded(encoder())
    assert encoded.batch.count == 1 and encoded.numbers == [0, 1]
    assert _log.drop_counts() == {"no_properties": 1}


def test_mapped_events_are_taken_as_they_are_through_the_hooks():
    events = MappedEvents([{"event": "kept", "distinct_id": "u", "properties": {}},
                           {"event": "dropped", "distinct_id": "u", "properties": {}}])  # fmt: skip
    encoded = events.encoded(encoder(before_send=[lambda e: e if e["event"] == "kept" else None]))
    assert [e["event"] for e in encoded.batch.events()] == ["kept"] and encoded.numbers == []
    assert _log.drop_counts() == {"before_send": 1}


def test_an_event_over_posthogs_limit_is_counted_and_reported():
    reported = []
    big = MappedEvents([{"event": "big", "distinct_id": "u", "properties": {"x": "y" * (1 << 20)}}])
    encoded = big.encoded(encoder(on_error=lambda error, events: reported.append((error.reason, len(events)))))
    assert encoded.batch.count == 0 and _log.drop_counts() == {"too_large": 1}
    assert reported == [("too_large", 1)]


def test_an_encoded_batch_stays_as_it_is():
    encoded = Encoded(EncodedBatch.of([b"{}"], 1), [7])
    assert encoded.encoded(encoder()) is encoded


def test_refusing_counts_each_kind_once():
    tracker = SequenceTracker(0)
    assert MappedEvents([{"event": "e"}, {"event": "f"}]).refused(encoder(), tracker) == 2
    tracker.saw([0])
    assert tracker.close(3) == (0, 2)  # shut down: 1 and 2 counted as never exported
    late = Records([("u", {"a": 1}, 1), ("u", {"a": 2}, 2), ("u", {"a": 3}, 5)])
    assert late.refused(encoder(), tracker) == 1  # 1 and 2 are not counted again when they show up


def test_the_hand_off_is_bounded_by_records_and_keeps_order(monkeypatch):
    monkeypatch.setattr(_handoff, "HANDOFF_MAX_RECORDS", 3)
    handoff = Handoff()
    first, second, late = Records([1, 2]), Records([3]), Records([4])
    assert handoff.put(1.0, first) and handoff.put(2.0, second)
    assert not handoff.put(3.0, late) and handoff.records == 3  # full: the caller encodes it
    encoded = Encoded(EncodedBatch.of([b"{}"], 1), [])
    handoff.put_encoded(3.0, encoded)  # always taken, behind the others
    assert handoff.take() == [(1.0, first), (2.0, second), (3.0, encoded)]
    assert not handoff and handoff.records == 0
