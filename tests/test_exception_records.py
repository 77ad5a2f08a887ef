"""OpenTelemetry's own exception records become PostHog ``$exception`` events (``capture_exceptions``).

Real parts: the SDK's ``LoggingHandler`` on a stdlib logger, real tracer providers and batch
processors, the exporters, and the local PostHog (``posthog_otel._local``) storing what arrives.
"""

from __future__ import annotations

import logging
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import posthog_otel
from posthog_otel._exceptions import limits
from posthog_otel._exceptions.stacktrace import exception_properties

from .conftest import API_KEY


@pytest.fixture
def handler(provider):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the SDK's handler, deprecated for the contrib one
        from opentelemetry.sdk._logs import LoggingHandler

        otel_handler = LoggingHandler(logger_provider=provider)
    app_logger = logging.getLogger("shop.payments")
    app_logger.addHandler(otel_handler)
    app_logger.propagate = False
    yield app_logger
    app_logger.removeHandler(otel_handler)
    app_logger.propagate = True


def configure(server, provider, **settings):
    return posthog_otel.configure(api_key=API_KEY, host=server.url, logger_provider=provider,
                                  schedule_delay_millis=50, **settings)  # fmt: skip


def pay(order):
    raise ConnectionError("card processor unreachable for order %s" % order)


def test_logging_exception_through_the_otel_handler_is_one_exception_on_the_contexts_person(local, provider, handler):
    server, store = local
    pipeline = configure(server, provider, capture_exceptions=True)
    with posthog_otel.new_context():
        posthog_otel.identify_context("user_456")
        posthog_otel.set_context_session("sess-1")
        posthog_otel.tag("plan", "pro")
        try:
            pay(7)
        except ConnectionError:
            handler.exception("payment failed for order %s", 7)
    handler.info("an ordinary log line")  # not PostHog's
    assert pipeline.flush()
    (event,) = store.events()
    assert (event["event"], event["distinct_id"]) == ("$exception", "user_456")
    properties = event["properties"]
    assert properties["$session_id"] == "sess-1" and properties["plan"] == "pro"
    assert properties["log.message"] == "payment failed for order 7"
    assert properties["$exception_level"] == "error" and properties["$exception_source"] == "otel.log_record"
    (entry,) = properties["$exception_list"]
    assert (entry["type"], entry["value"]) == ("ConnectionError", "card processor unreachable for order 7")
    frames = entry["stacktrace"]["frames"]
    assert [f["function"] for f in frames][-2:] == [
        "test_logging_exception_through_the_otel_handler_is_one_exception_on_the_contexts_person",
        "pay",
    ]
    assert frames[-1]["context_line"] == 'raise ConnectionError("card processor unreachable for order %s" % order)'
    assert frames[-1]["lineno"] == pay.__code__.co_firstlineno + 1
    assert store.person("user_456") is not None


def test_a_person_on_the_record_wins_and_without_one_it_is_personless(local, provider, handler):
    server, store = local
    pipeline = configure(server, provider, capture_exceptions=True)
    for extra in ({"user.id": "user_9"}, {}):
        try:
            pay(1)
        except ConnectionError:
            handler.exception("failed", extra=extra)
    assert pipeline.flush()
    first, second = store.events()
    assert first["distinct_id"] == "user_9" and "$process_person_profile" not in first["properties"]
    assert second["properties"]["$process_person_profile"] is False and store.person(second["distinct_id"]) is None


def test_off_by_default(local, provider, handler):
    server, store = local
    pipeline = configure(server, provider)
    try:
        pay(1)
    except ConnectionError:
        handler.exception("failed")
    posthog_otel.capture("still_here", distinct_id="u")
    assert pipeline.flush()
    assert [e["event"] for e in store.events()] == ["still_here"]


@pytest.mark.slow
def test_a_hot_loop_is_bounded_and_the_rest_counted(local, provider, handler, monkeypatch):
    """10,000 failures at one place: PostHog's burst (50) goes out, the 9,950 others are counted.
    The clock stands still, so no bucket refills while the loop runs, however slow the machine."""
    monkeypatch.setattr(limits.records, "clock", lambda: 1000.0)
    server, store = local
    pipeline = configure(server, provider, capture_exceptions=True, max_queue_size=20000)
    for order in range(10_000):
        try:
            pay(order)
        except ConnectionError:
            handler.exception("failed")
    assert pipeline.flush()
    assert len(store.events()) == limits.BURST
    assert posthog_otel.drop_counts()["exception_rate_limited"] == 10_000 - limits.BURST


def span_exporter(server, **settings):
    provider = TracerProvider()
    exporter = posthog_otel.PostHogSpanExporter(api_key=API_KEY, host=server.url, **settings)
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=50)
    provider.add_span_processor(processor)
    return provider, exporter


def test_span_exception_events_are_one_exception_per_exception_on_the_spans_person(local):
    server, store = local
    provider, exporter = span_exporter(server, capture_exceptions=True)
    tracer = provider.get_tracer("shop")
    with pytest.raises(ConnectionError):
        with tracer.start_as_current_span("request") as request:
            request.set_attribute("user.id", "user_77")
            with tracer.start_as_current_span("charge"):  # records it, then "request" records it again
                pay(3)
    provider.force_flush()
    assert exporter.force_flush()
    (event,) = store.events()
    assert (event["event"], event["distinct_id"]) == ("$exception", "user_77")
    (entry,) = event["properties"]["$exception_list"]
    assert (entry["module"], entry["type"]) == (None, "ConnectionError")
    assert entry["stacktrace"]["frames"][-1]["function"] == "pay"
    assert event["properties"]["$exception_source"] == "otel.span_event"
    assert posthog_otel.drop_counts()["exception_duplicate"] == 1
    provider.shutdown()


def test_a_stack_in_no_known_format_is_kept_whole(local):
    server, store = local
    provider, exporter = span_exporter(server, capture_exceptions=True)
    with provider.get_tracer("shop").start_as_current_span("job") as span:
        span.add_event(
            "exception",
            {
                "exception.type": "Panic",
                "exception.message": "index out of range",
                "exception.stacktrace": "goroutine 1 [running]:\nmain.main()\n\t/app/main.go:9",
            },
        )
    provider.force_flush()
    assert exporter.force_flush()
    (event,) = store.events()
    assert event["properties"]["$exception_list"][0]["type"] == "Panic"
    assert "stacktrace" not in event["properties"]["$exception_list"][0]
    assert event["properties"]["exception.stacktrace"].startswith("goroutine 1 [running]:")
    provider.shutdown()


pieces = st.sampled_from([
    "Traceback (most recent call last):", '  File "/app/x.py", line 3, in f', "    f()", "    ^^^^", "ValueError: x",
    "The above exception was the direct cause of the following exception:", "  + Exception Group Traceback "
    "(most recent call last):", "  | ValueError: 1", "  +-+---------------- 1 ----------------", "    | KeyError: 'k'",
    "    +------------------------------------", "java.lang.Error: e", "\tat a.B.c(B.java:1)", "Caused by: x.Y: z",
    "\t... 3 more", "\tSuppressed: q.R", "Error: boom", "    at f (/a.js:1:2)", "    at /b.js:3:4", "", " ", "|", "+",
])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(pieces, st.text(max_size=30)), max_size=25), st.one_of(st.none(), st.text(max_size=10)))
def test_any_stack_text_is_read_or_kept_whole_never_an_error(lines, message):
    attributes = {"exception.type": "E", "exception.stacktrace": "\n".join(lines)}
    if message is not None:
        attributes["exception.message"] = message
    found = exception_properties(attributes, handled=True)
    entries = found["$exception_list"]
    assert entries and entries[0]["type"] and len(entries) <= 50
    assert [e["mechanism"]["exception_id"] for e in entries] == list(range(len(entries)))
    for entry in entries:
        for frame in (entry.get("stacktrace") or {}).get("frames", []):
            assert frame["platform"] in ("python", "custom") and frame["function"]


def test_texts_built_to_make_patterns_backtrack_are_read_in_one_pass():
    """Each would take minutes with a pattern that backtracks quadratically (the test would hang):
    a line in a recognised format (so the text is parsed), then a long hostile one."""
    v8, jvm, python = (
        "Error: x\n    at f (/a.js:1:2)\n",
        "a.B: x\n\tat a.B.c(B.java:1)\n",
        "Traceback (most recent call last):\n",
    )
    hostile = ["\n" * 200_000, "  at " + " (" * 60_000, "  at x" + " " * 100_000 + "y", "  at " + "1:" * 60_000,
               '  File "x", line 1, in ' + " " * 100_000 + "z", "  " * 100_000 + "^"]  # fmt: skip
    for known in (v8, jvm, python):
        for line in hostile:
            exception_properties({"exception.type": "E", "exception.stacktrace": known + line}, handled=True)
