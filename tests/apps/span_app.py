"""Identity written by hand as span events; the exporter comes from OTEL_TRACES_EXPORTER=posthog."""

from opentelemetry import trace

tracer = trace.get_tracer("span_app")
with tracer.start_as_current_span("signup"):
    trace.get_current_span().add_event("posthog.set", {"posthog.distinct_id": "span-user", "plan": "pro"})
