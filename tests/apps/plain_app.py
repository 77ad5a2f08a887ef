"""Nothing but an operation: whatever configured OpenTelemetry (opentelemetry-instrument, a
config file) must have installed the PostHog exporter."""

import posthog_otel as posthog

posthog.set("declared", {"via": "OTEL_CONFIG_FILE"})
