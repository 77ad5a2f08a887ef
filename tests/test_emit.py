"""The operations, driven through the real SDK pipeline to a loopback PostHog."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading

import pytest
from opentelemetry.sdk.trace import TracerProvider

import posthog_otel as posthog
from posthog_otel import _emit


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
        lambda: posthog.capture("signup", distinct_id="user123", properties={"plan": "free"}, groups={"company": "acme"}),
        lambda: posthog.capture("user123", event="signup", properties={"plan": "free"}, groups={"company": "acme"}),
        lambda: posthog.capture(distinct_id="user123", event="signup", properties={"plan": "free"}, groups={"company": "acme"}),
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
    assert posthog.capture("a", "b", {}, "extra") is None
    assert sent(server, pipeline) == []
    assert posthog.drop_counts()["no_event"] == 3
    assert "needs an event name" in caplog.text


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


def test_internal_errors_never_reach_the_caller(pipeline, monkeypatch, caplog):
    monkeypatch.setattr(_emit, "RAISE_INTERNAL_ERRORS", False)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(_emit.emitter, "emit", broken)
    assert posthog.set("u", {"a": 1}) is None
    assert posthog.capture("e") is None
    assert posthog.drop_counts()["internal_error"] == 2
    assert "internal error in set()" in caplog.text


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
