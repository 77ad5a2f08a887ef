"""The operations, driven through the real SDK pipeline to a loopback PostHog."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import threading
import uuid as uuid_module

import pytest
from opentelemetry.sdk.trace import TracerProvider

import posthog_otel as posthog
from posthog_otel import _emit, _state


def sent(server, pipeline):
    pipeline.flush()
    return server.events


def strip(event):
    """The parts of an event that identify the call (no uuid, clock, library tags)."""
    return {
        "event": event["event"],
        "distinct_id": event["distinct_id"],
        "$set": event.get("$set"),
        "properties": {k: v for k, v in event["properties"].items() if not k.startswith(("$lib", "$python", "$os"))},
    }


def test_set_call_shapes_are_equivalent(server, pipeline):
    posthog.set("user123", {"plan": "premium"})
    posthog.set(distinct_id="user123", properties={"plan": "premium"})
    with posthog.new_context():
        posthog.identify_context("user123")
        posthog.set({"plan": "premium"})
        posthog.set(properties={"plan": "premium"})
    events = [strip(e) for e in sent(server, pipeline)]
    assert len(events) == 4
    assert all(e == events[0] for e in events)
    assert events[0]["$set"] == {"plan": "premium"}


@pytest.mark.parametrize(
    "call",
    [
        lambda: posthog.capture("user123", "signup", {"plan": "free"}, groups={"company": "acme"}),
        lambda: posthog.capture(
            "signup", distinct_id="user123", properties={"plan": "free"}, groups={"company": "acme"}
        ),
        lambda: posthog.capture("user123", event="signup", properties={"plan": "free"}, groups={"company": "acme"}),
        lambda: posthog.capture(
            distinct_id="user123", event="signup", properties={"plan": "free"}, groups={"company": "acme"}
        ),
    ],
)
def test_capture_call_shapes(call, server, pipeline):
    assert call() is not None
    (event,) = sent(server, pipeline)
    assert event["event"] == "signup"
    assert event["distinct_id"] == "user123"
    assert event["properties"]["plan"] == "free"
    assert event["properties"]["$groups"] == {"company": "acme"}


def test_capture_event_with_properties_positionally(server, pipeline):
    with posthog.new_context():
        posthog.identify_context("user123")
        posthog.capture("dashboard_viewed", {"tab": "main"})
    (event,) = sent(server, pipeline)
    assert (event["event"], event["distinct_id"], event["properties"]["tab"]) == ("dashboard_viewed", "user123", "main")


def test_capture_without_event_name_is_dropped(server, pipeline, caplog):
    assert posthog.capture() is None
    assert posthog.capture(distinct_id="u") is None
    assert posthog.capture("u", "") is None
    assert sent(server, pipeline) == []
    assert posthog.drop_counts() == {"no_event": 2, "invalid_event": 1}
    assert "needs an event name" in caplog.text
    assert "the event name is empty" in caplog.text


@pytest.mark.parametrize(
    "call, reason, said",
    [
        (
            lambda: posthog.capture("u", 123),
            "invalid_event",
            "capture(): the event name must be a string, not a int (123)",
        ),
        (
            lambda: posthog.capture(event=b"signup"),
            "invalid_event",
            "the event name must be a string, not a bytes (b'signup')",
        ),
        (lambda: posthog.capture("a", "b", {}, "extra"), "invalid_arguments", "takes at most 3 positional arguments"),
        (
            lambda: posthog.capture("u", {"a": 1}, "x", event="e"),
            "invalid_arguments",
            "do not fit (distinct_id, event, properties)",
        ),
    ],
)
def test_capture_says_what_is_actually_wrong(call, reason, said, server, pipeline, caplog):
    assert call() is None
    assert sent(server, pipeline) == []
    assert posthog.drop_counts() == {reason: 1}
    assert said in caplog.text
    assert "needs an event name" not in caplog.text


def test_a_group_without_type_or_key_is_left_out_and_counted(server, pipeline, caplog):
    uuid = posthog.capture("u", "e", groups={"company": "acme", "team": None, "": "x", None: "y"})
    (event,) = sent(server, pipeline)
    assert event["uuid"] == uuid
    assert event["properties"]["$groups"] == {"company": "acme"}
    assert posthog.drop_counts() == {"invalid_group": 3}
    assert "that group is left out" in caplog.text


def test_groups_that_are_not_a_map_are_ignored_and_counted(server, pipeline, caplog):
    uuid = posthog.capture("u", "e", groups=["company", "acme"])
    (event,) = sent(server, pipeline)
    assert event["uuid"] == uuid and "$groups" not in event["properties"]
    assert posthog.drop_counts() == {"invalid_groups": 1}
    assert "groups must be a map" in caplog.text


def test_warnings_are_rate_limited_per_call_not_only_per_reason(caplog):
    """An alias mistake is said even though a set mistake with the same reason was just said."""
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    for _ in range(3):
        posthog.set(None, {"a": 1})
    posthog.alias("anon", None)
    posthog.set_once(None, {"a": 1})
    lines = [r.getMessage() for r in caplog.records]
    assert sum("set(): without a distinct_id" in line for line in lines) == 1
    assert sum("alias(): needs a distinct_id" in line for line in lines) == 1
    assert sum("set_once(): without a distinct_id" in line for line in lines) == 1
    assert posthog.drop_counts() == {"no_distinct_id": 5}


def test_property_warnings_are_said_per_call(caplog):
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    posthog.set("u", {"fn": len, "a": 1})
    posthog.capture("u", "e", {"fn": len})
    assert "dropped set() properties value 'fn'" in caplog.text
    assert "dropped capture() properties value 'fn'" in caplog.text


def test_returned_uuid_is_the_sent_uuid(server, pipeline):
    uuids = [
        posthog.set("u", {"a": 1}),
        posthog.set_once("u", {"a": 1}),
        posthog.group_identify("company", "acme", {"n": 1}),
        posthog.alias("anon", "u"),
        posthog.capture("u", "e"),
    ]
    assert [e["uuid"] for e in sent(server, pipeline)] == uuids


def test_invalid_uuid_is_replaced_with_a_warning(server, pipeline, caplog):
    returned = posthog.set("u", {"a": 1}, uuid="not-a-uuid")
    (event,) = sent(server, pipeline)
    assert returned == event["uuid"] != "not-a-uuid"
    assert "invalid uuid 'not-a-uuid'" in caplog.text
    assert posthog.drop_counts() == {"invalid_uuid": 1}


CANONICAL = "12345678-1234-5678-9abc-def012345678"


@pytest.mark.parametrize(
    "given",
    [
        CANONICAL,
        "{12345678-1234-5678-9abc-def012345678}",
        "urn:uuid:12345678-1234-5678-9abc-def012345678",
        "12345678-1234-5678-9ABC-DEF012345678",
        "12345678123456789abcdef012345678",
        uuid_module.UUID(CANONICAL),
    ],
    ids=["canonical", "braced", "urn", "upper", "hex", "UUID"],
)
def test_a_given_uuid_is_returned_and_sent_in_canonical_form(given, server, pipeline):
    uuids = [
        posthog.set("u", {"a": 1}, uuid=given),
        posthog.capture("u", "e", uuid=given),
        posthog.alias("anon", "u", uuid=given),
        posthog.group_identify("company", "acme", uuid=given),
    ]
    assert uuids == [CANONICAL] * 4
    assert [e["uuid"] for e in sent(server, pipeline)] == uuids
    assert posthog.drop_counts() == {}


UTC = dt.timezone.utc


@pytest.mark.parametrize(
    "given, expected",
    [
        (dt.datetime(1960, 5, 1, 12, 30, 15, 250000, tzinfo=UTC), "1960-05-01T12:30:15.250000+00:00"),
        (dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "1969-12-31T23:59:59.999999+00:00"),
        (dt.datetime(1970, 1, 1, tzinfo=UTC), "1970-01-01T00:00:00+00:00"),
        ("1901-01-01T00:00:00+01:00", "1900-12-31T23:00:00+00:00"),
        (dt.datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00+00:00"),
        (dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), "9999-12-31T23:59:59+00:00"),
        (dt.datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC), "1970-01-01T00:00:00.000001+00:00"),
        (dt.datetime(2024, 1, 15, 10, 30, tzinfo=UTC), "2024-01-15T10:30:00+00:00"),
    ],
)
def test_any_datetime_arrives_as_given_under_the_returned_uuid(given, expected, server, pipeline):
    """Times an OTLP record cannot hold (at or before the epoch, past 2554) keep their time and uuid."""
    returned = posthog.set("u", {"a": 1}, timestamp=given)
    (event,) = sent(server, pipeline)
    assert (event["uuid"], event["timestamp"]) == (returned, expected)
    assert posthog.drop_counts() == {}


def test_records_before_1970_stay_encodable_by_otlp(pipeline, provider):
    """The record's own timestamp is never negative (OTLP's is unsigned): the time rides in posthog.timestamp."""
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    memory = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))  # what any other exporter would get
    posthog.set("u", {"a": 1}, timestamp=dt.datetime(1960, 1, 1, tzinfo=UTC))
    (readable,) = memory.get_finished_logs()
    record = readable.log_record
    assert record.timestamp is None and record.observed_timestamp > 0
    assert record.attributes["posthog.timestamp"] == "1960-01-01T00:00:00+00:00"


def test_invalid_timestamp_falls_back_to_now_with_a_warning(server, pipeline, caplog):
    posthog.set("u", {"a": 1}, timestamp="2024-01-15")  # a date, not a moment
    (event,) = sent(server, pipeline)
    assert not event["timestamp"].startswith("2024-01-15")
    assert "invalid timestamp" in caplog.text


def test_properties_are_snapshotted_at_the_call(server, pipeline):
    properties = {"plan": "free", "tags": ["a"]}
    posthog.set("u", properties)
    properties["plan"] = "changed"
    properties["tags"].append("b")
    (event,) = sent(server, pipeline)
    assert event["$set"] == {"plan": "free", "tags": ["a"]}


def test_seed_differences_nested_flattened_and_unserializable_dropped(server, pipeline, caplog):
    posthog.set(
        "user123",
        {
            "valid_string": "hello",
            "valid_number": 42,
            "invalid_function": lambda x: x,
            "nested_object": {"key": "value"},
        },
    )
    (event,) = sent(server, pipeline)
    assert event["$set"] == {"valid_string": "hello", "valid_number": 42, "nested_object.key": "value"}
    assert "'invalid_function'" in caplog.text
    assert posthog.drop_counts() == {"invalid_property": 1}


def test_context_does_not_leak_into_new_threads_but_follows_copied_contexts(server, pipeline):
    results = {}
    with posthog.new_context():
        posthog.identify_context("request-user")
        plain = threading.Thread(target=lambda: results.update(plain=posthog.set({"a": 1})))
        plain.start()
        plain.join()
        context = contextvars.copy_context()
    copied = threading.Thread(target=lambda: results.update(copied=context.run(posthog.set, {"a": 1})))
    copied.start()
    copied.join()
    assert results["plain"] is None
    (event,) = sent(server, pipeline)
    assert event["uuid"] == results["copied"] and event["distinct_id"] == "request-user"


def test_context_follows_asyncio_tasks(server, pipeline):
    async def handle(user):
        with posthog.new_context():
            posthog.identify_context(user)
            posthog.tag("user_tag", user)
            await asyncio.sleep(0.01)
            posthog.capture("request_done")

    async def main():
        await asyncio.gather(*(handle("user-%d" % i) for i in range(5)))

    asyncio.run(main())
    events = sent(server, pipeline)
    assert sorted((e["distinct_id"], e["properties"]["user_tag"]) for e in events) == [
        ("user-%d" % i, "user-%d" % i) for i in range(5)
    ]


def test_context_calls_outside_a_context_warn(caplog):
    posthog.identify_context("u")
    posthog.tag("k", "v")
    assert "outside `with new_context():`" in caplog.text


def test_trace_and_span_ids_inside_a_recording_span(server, pipeline):
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        posthog.set("u", {"a": 1})
        context = span.get_span_context()
    posthog.set("u", {"a": 2})
    inside, outside = sent(server, pipeline)
    assert inside["properties"]["$trace_id"] == "%032x" % context.trace_id
    assert inside["properties"]["$span_id"] == "%016x" % context.span_id
    assert "$trace_id" not in outside["properties"]


def test_without_a_logger_provider_operations_are_dropped_with_one_warning(caplog):
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    assert posthog.set("u", {"a": 1}) is None
    assert posthog.capture("u", "e") is None
    assert caplog.text.count("no OpenTelemetry LoggerProvider is configured") == 1
    assert posthog.drop_counts() == {"no_logger_provider": 2}


OPERATIONS = {
    "set": lambda: posthog.set("u", {"a": 1}),
    "set_once": lambda: posthog.set_once("u", {"a": 1}),
    "group_identify": lambda: posthog.group_identify("company", "acme", {"a": 1}),
    "alias": lambda: posthog.alias("anon", "u"),
    "capture": lambda: posthog.capture("u", "e"),
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_internal_errors_never_reach_the_caller(name, pipeline, monkeypatch, caplog):
    monkeypatch.setattr(_state, "raise_internal_errors", False)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(_emit.emitter, "emit", broken)
    assert OPERATIONS[name]() is None
    assert posthog.drop_counts() == {"internal_error": 1}
    assert "internal error in %s()" % name in caplog.text


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_internal_errors_reraise_under_the_test_suite(name, pipeline, monkeypatch):
    """_state.raise_internal_errors (set by conftest) turns a bug into a failing test, not a quiet drop."""

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(_emit.emitter, "emit", broken)
    with pytest.raises(RuntimeError, match="boom"):
        OPERATIONS[name]()


def test_the_guard_keeps_each_operations_signature():
    import inspect

    assert list(inspect.signature(posthog.set).parameters) == [
        "distinct_id",
        "properties",
        "timestamp",
        "uuid",
        "disable_geoip",
    ]
    assert posthog.capture.__doc__.startswith("Capture an event")


def test_application_logs_on_the_same_provider_are_not_exported(server, pipeline, provider):
    app_logger = provider.get_logger("my.app")
    app_logger.emit(body="user logged in", attributes={"user.id": "u"})
    app_logger.emit(body={"a": 1}, event_name="posthog.unknown_operation")
    posthog.set("u", {"a": 1})
    assert [e["event"] for e in sent(server, pipeline)] == ["$set"]


def test_records_written_by_hand_follow_the_schema(server, pipeline, provider):
    """A record from any source that follows docs/schema.md is exported like ours."""
    provider.get_logger("elsewhere").emit(
        event_name="posthog.capture",
        body={"plan": "pro"},
        attributes={"user.id": "by-hand", "posthog.event": "upgraded", "posthog.groups.company": "acme"},
    )
    (event,) = sent(server, pipeline)
    assert event["event"] == "upgraded" and event["distinct_id"] == "by-hand"
    assert event["properties"]["plan"] == "pro"
    assert event["properties"]["$groups"] == {"company": "acme"}


def test_a_groups_property_is_the_events_groups_not_flattened(server, pipeline):
    """PostHog reads ``$groups`` as the event's groups: sent as one object, and the record
    carries them as ``posthog.groups.*`` like ``groups=``'s (issue 19)."""
    posthog.capture("u", "e", {"$groups": {"company": "acme", "project": 42}, "plan": "x"})
    (event,) = sent(server, pipeline)
    assert event["properties"]["$groups"] == {"company": "acme", "project": "42"}
    assert event["properties"]["plan"] == "x"
    assert not [key for key in event["properties"] if key.startswith("$groups.")]
    assert posthog.drop_counts() == {}


def test_a_groups_property_joins_groups_and_groups_wins_for_a_type_in_both(server, pipeline):
    """PostHog's SDK gives ``groups=`` the last word; a type named only in the property is
    kept here (PostHog's SDK drops the whole property then, silently)."""
    posthog.capture("u", "e", {"$groups": {"company": "old", "team": "eng"}}, groups={"company": "new"})
    (event,) = sent(server, pipeline)
    assert event["properties"]["$groups"] == {"company": "new", "team": "eng"}


def test_a_groups_property_that_is_not_a_map_is_left_out_and_counted(server, pipeline, caplog):
    uuid = posthog.capture("u", "e", {"$groups": "acme", "plan": "x"}, groups={"company": "acme"})
    (event,) = sent(server, pipeline)
    assert event["uuid"] == uuid
    assert event["properties"]["$groups"] == {"company": "acme"} and event["properties"]["plan"] == "x"
    assert posthog.drop_counts() == {"invalid_groups": 1}
    assert "$groups" in caplog.text and "map of group type to group key" in caplog.text
