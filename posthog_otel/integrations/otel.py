"""PostHog's ``posthog.integrations.otel``, by the same path: the context's person and session on
the application's own spans (and here, log records too).

    from posthog_otel.integrations.otel import PostHogContextSpanProcessor, PostHogContextLogRecordProcessor

    tracer_provider.add_span_processor(PostHogContextSpanProcessor())
    logger_provider.add_log_record_processor(PostHogContextLogRecordProcessor())  # before the exporting ones

or ``configure(context_attributes=True)`` (``POSTHOG_OTEL_CONTEXT_ATTRIBUTES=true``), which adds both
to the global providers, the log one first. Names and rules: ``docs/identity.md``.
"""

from .._stamping import PostHogContextLogRecordProcessor, PostHogContextSpanProcessor, enrich_current_span, install

__all__ = ["PostHogContextLogRecordProcessor", "PostHogContextSpanProcessor", "enrich_current_span", "install"]
