"""The context's person and session on every span and log record the application emits
(``PostHogContextSpanProcessor``, ``PostHogContextLogRecordProcessor``, ``configure(context_attributes=True)``),
on the real SDK's providers with its in-memory exporters; and the names, checked against PostHog's own
span processor (its SDK 7.91.1)."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import posthog_otel
from posthog_otel import _stamping
from posthog_otel._stamping import PostHogContextLogRecordProcessor, PostHogContextSpanProcessor

from .conftest import API_KEY

try:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as InMemoryLogExporter
except ImportError:  # SDKs before 1.40
    from opentelemetry.sdk._logs.export import InMemoryLogExporter  # type: ignore[no-redef]

PERSON = {"posthogDistinctId": "u1", "user.id": "u1", "posthog.distinct_id": "u1"}
SESSION = {"sessionId": "s1", "session.id": "s1", "$session_id": "s1"}


@pytest.fixture(autouse=True)
def forget_installs():
    yield
    _stamping._reset_for_tests()


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(PostHogContextSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("app"), exporter
    provider.shutdown()


@pytest.fixture
def logs():
    exporter = InMemoryLogExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(PostHogContextLogRecordProcessor())
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    yield provider.get_logger("app"), exporter
    provider.shutdown()


def attributes_of(exported):
    return [dict(item.attributes or {}) for item in exported.get_finished_spans()]


def record_attributes(exported):
    return [dict(item.log_record.attributes or {}) for item in exported.get_finished_logs()]


def test_spans_inside_a_context_carry_the_person_and_session_and_outside_none(spans):
    tracer, exported = spans
    with tracer.start_as_current_span("before"):
        pass
    with posthog_otel.new_context():
        posthog_otel.identify_context("u1")
        posthog_otel.set_context_session("s1")
        with tracer.start_as_current_span("outer", attributes={"app": 1}):
            with tracer.start_as_current_span("inner"):
                pass
        with posthog_otel.new_context(fresh=True):
            with tracer.start_as_current_span("fresh"):
                pass
    with tracer.start_as_current_span("after"):
        pass
    by_name = {s.name: dict(s.attributes or {}) for s in exported.get_finished_spans()}
    assert by_name["inner"] == {**PERSON, **SESSION}
    assert by_name["outer"] == {"app": 1, **PERSON, **SESSION}
    assert by_name["before"] == by_name["after"] == by_name["fresh"] == {}


def test_log_records_inside_a_context_carry_them_and_operations_are_untouched(logs):
    logger, exported = logs
    logger.emit(body="before")
    with posthog_otel.new_context():
        posthog_otel.identify_context("u1")
        posthog_otel.set_context_session("s1")
        logger.emit(body="inside", attributes={"app": 1})
        logger.emit(body="op", event_name="posthog.capture", attributes={"posthog.event": "e"})
    logger.emit(body="after")
    assert record_attributes(exported) == [{}, {"app": 1, **PERSON, **SESSION}, {"posthog.event": "e"}, {}]


def test_explicit_attributes_win_as_in_posthogs_processor(spans, logs):
    tracer, exported_spans = spans
    logger, exported_logs = logs
    with posthog_otel.new_context():
        posthog_otel.identify_context("u1")
        posthog_otel.set_context_session("s1")
        with tracer.start_as_current_span("other user", attributes={"enduser.id": "someone"}):
            pass
        with tracer.start_as_current_span("own session", attributes={"session.id": "mine"}):
            pass
        logger.emit(body="x", attributes={"posthogDistinctId": "other"})
    by_name = {s.name: dict(s.attributes or {}) for s in exported_spans.get_finished_spans()}
    assert by_name["other user"] == {"enduser.id": "someone", **SESSION}
    assert by_name["own session"] == {"session.id": "mine", **PERSON}
    assert record_attributes(exported_logs) == [{"posthogDistinctId": "other", **SESSION}]


def test_tags_are_added_only_when_asked(logs):
    logger, exported = logs
    provider = LoggerProvider(shutdown_on_exit=False)
    with_tags = InMemoryLogExporter()
    provider.add_log_record_processor(PostHogContextLogRecordProcessor(tags=True))
    provider.add_log_record_processor(SimpleLogRecordProcessor(with_tags))
    with posthog_otel.new_context():
        posthog_otel.tag("plan", "pro")
        posthog_otel.tag("seats", [1, 2])
        posthog_otel.tag("nested", {"a": {"b": 1}})
        posthog_otel.tag("nan", float("nan"))
        logger.emit(body="x")
        provider.get_logger("app").emit(body="x")
    assert record_attributes(exported) == [{}]
    assert record_attributes(with_tags) == [{"plan": "pro", "seats": [1, 2], "nested": '{"a": {"b": 1}}'}]
    provider.shutdown()


def test_an_unusable_identify_context_id_stamps_nothing(logs, caplog):
    logger, exported = logs
    with posthog_otel.new_context():
        posthog_otel.identify_context("u1")
        with posthog_otel.new_context():
            posthog_otel.identify_context("bad\udcff")  # refused: must not fall back to u1 either
            logger.emit(body="x")
    assert record_attributes(exported) == [{}]


class Snapshots(LogRecordExporter):
    """An exporter that keeps a copy of each record's attributes as they are when exported (the
    OTLP exporter encodes them then)."""

    def __init__(self):
        self.seen = []

    def export(self, batch):
        self.seen.extend(dict(item.log_record.attributes or {}) for item in batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=30000):
        return True


def test_install_puts_the_log_processor_before_those_already_there():
    """An exporting processor added earlier (opentelemetry-instrument's OTLP one) must see the
    person: it exports (or queues for another thread) in its own ``on_emit``."""
    exported = Snapshots()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exported))
    tracers = TracerProvider()
    _stamping.install(provider, tracers)
    _stamping.install(provider, tracers)  # once per provider
    with posthog_otel.new_context():
        posthog_otel.identify_context("u1")
        provider.get_logger("app").emit(body="x")
    assert exported.seen == [PERSON]
    provider.shutdown()
    tracers.shutdown()


def test_configure_switch_installs_both_on_the_providers(server, monkeypatch):
    tracers = TracerProvider()
    spans = InMemorySpanExporter()
    tracers.add_span_processor(SimpleSpanProcessor(spans))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", tracers)
    logs = LoggerProvider(shutdown_on_exit=False)
    exported = InMemoryLogExporter()
    logs.add_log_record_processor(SimpleLogRecordProcessor(exported))
    monkeypatch.setenv("POSTHOG_OTEL_CONTEXT_ATTRIBUTES", "true")
    pipeline = posthog_otel.configure(api_key=API_KEY, host=server.url, logger_provider=logs, schedule_delay_millis=50)
    with posthog_otel.new_context():
        posthog_otel.identify_context("u1")
        with tracers.get_tracer("app").start_as_current_span("s"):
            logs.get_logger("app").emit(body="x")
        posthog_otel.capture("e")
    pipeline.flush()
    assert attributes_of(spans) == [PERSON]
    assert record_attributes(exported)[0] == PERSON
    assert [(e["event"], e["distinct_id"]) for e in server.events] == [("e", "u1")]  # operations as ever
    logs.shutdown()


def test_the_switch_is_off_by_default(server, monkeypatch):
    tracers = TracerProvider()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", tracers)
    provider = LoggerProvider(shutdown_on_exit=False)
    posthog_otel.configure(api_key=API_KEY, host=server.url, logger_provider=provider)
    assert not _stamping.installed(tracers) and not _stamping.installed(provider)
    provider.shutdown()


def test_a_proxy_tracer_provider_is_said_once(server, monkeypatch, caplog):
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    provider = LoggerProvider(shutdown_on_exit=False)
    posthog_otel.configure(api_key=API_KEY, host=server.url, logger_provider=provider, context_attributes=True)
    assert "global TracerProvider is not the SDK's yet" in caplog.text
    provider.shutdown()


def test_the_names_are_posthogs_span_processors_and_more(spans):
    """PostHog's ``PostHogContextSpanProcessor`` (7.91.1) writes ``posthogDistinctId`` and
    ``sessionId``: ours writes those too, with the same values for the same context."""
    posthog_sdk = pytest.importorskip("posthog")
    from posthog.integrations.otel import PostHogContextSpanProcessor as Theirs

    provider = TracerProvider()
    exported = InMemorySpanExporter()
    provider.add_span_processor(Theirs())
    provider.add_span_processor(SimpleSpanProcessor(exported))
    theirs_before = posthog_sdk.api_key
    posthog_sdk.api_key = API_KEY  # their enrichment needs a configured client
    try:
        with posthog_sdk.new_context():
            posthog_sdk.identify_context("u1")
            posthog_sdk.set_context_session("s1")
            with provider.get_tracer("app").start_as_current_span("s"):
                pass
    finally:
        posthog_sdk.api_key = theirs_before
        provider.shutdown()
    (theirs,) = attributes_of(exported)
    tracer, ours_exported = spans
    with posthog_otel.new_context():
        posthog_otel.identify_context("u1")
        posthog_otel.set_context_session("s1")
        with tracer.start_as_current_span("s"):
            pass
    (ours,) = attributes_of(ours_exported)
    assert theirs == {"posthogDistinctId": "u1", "sessionId": "s1"}
    assert {k: ours[k] for k in theirs} == theirs


def test_a_broken_context_never_reaches_the_application(spans, monkeypatch):
    tracer, exported = spans
    monkeypatch.setattr(posthog_otel._state, "raise_internal_errors", False)

    def broken(scope):
        raise RuntimeError("boom")

    monkeypatch.setattr(_stamping._context, "context_distinct_id", broken)
    with posthog_otel.new_context():
        with tracer.start_as_current_span("s"):
            logging.getLogger("app").info("still running")
    assert attributes_of(exported) == [{}]
    assert posthog_otel.drop_counts() == {"internal_error": 1}
