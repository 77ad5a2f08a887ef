"""PostHogSpanExporter: span events following the schema become PostHog events."""

from __future__ import annotations

import sys

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from posthog_otel import PostHogSpanExporter

from .conftest import API_KEY
from .test_autoconfigure import APPS, BIN, run


def tracer_for(server, **provider_options):
    provider = TracerProvider(shutdown_on_exit=False, **provider_options)
    provider.add_span_processor(BatchSpanProcessor(PostHogSpanExporter(api_key=API_KEY, host=server.url)))
    return provider, provider.get_tracer("test")


def test_span_events_become_posthog_events(server):
    provider, tracer = tracer_for(server)
    with tracer.start_as_current_span("checkout") as span:
        span.add_event("posthog.set", {"posthog.distinct_id": "u1", "plan": "pro", "seats": 3})
        span.add_event(
            "posthog.capture",
            {"posthog.event": "purchased", "user.id": "u2", "posthog.groups.company": "acme", "amount": 42.5},
        )
        span.add_event("cache miss", {"key": "x"})
        context = span.get_span_context()
    provider.force_flush()
    person, purchase = server.events
    assert (person["event"], person["distinct_id"], person["$set"]) == ("$set", "u1", {"plan": "pro", "seats": 3})
    assert person["properties"]["$trace_id"] == "%032x" % context.trace_id
    assert (purchase["event"], purchase["distinct_id"]) == ("purchased", "u2")
    assert purchase["properties"]["amount"] == 42.5 and purchase["properties"]["$groups"] == {"company": "acme"}
    provider.shutdown()


def test_sampled_out_spans_carry_nothing(server):
    provider, tracer = tracer_for(server, sampler=ALWAYS_OFF)
    with tracer.start_as_current_span("dropped") as span:
        span.add_event("posthog.set", {"posthog.distinct_id": "u1", "plan": "pro"})
    provider.force_flush()
    assert server.requests == []
    provider.shutdown()


def test_traces_exporter_entry_point(server):
    instrument = BIN / "opentelemetry-instrument"
    if not instrument.exists():
        import pytest

        pytest.skip("opentelemetry-instrumentation is not installed")
    result = run(
        [str(instrument), sys.executable, str(APPS / "span_app.py")],
        OTEL_TRACES_EXPORTER="posthog",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        POSTHOG_API_KEY=API_KEY,
        POSTHOG_HOST=server.url,
    )
    assert result.returncode == 0, result.stderr
    (event,) = server.events
    assert event["distinct_id"] == "span-user" and event["$set"] == {"plan": "pro"}
