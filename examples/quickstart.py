"""posthog_otel in an application that sets up OpenTelemetry in code.

    POSTHOG_API_KEY=phc_... python examples/quickstart.py

configure() adds the PostHog exporter (under the SDK's batch processor) to the global
LoggerProvider, creating one if the application has none.
"""

import posthog_otel as posthog

pipeline = posthog.configure()  # api_key/host from POSTHOG_API_KEY / POSTHOG_HOST

posthog.set("user123", {"email": "user@example.com", "plan": "premium"})
posthog.group_identify("company", "acme_corp", {"name": "Acme Corporation", "employees": 250})

with posthog.new_context():
    posthog.identify_context("user123")
    posthog.tag("request_id", "req-42")
    posthog.capture("report_generated", {"report_type": "monthly"}, groups={"company": "acme_corp"})

pipeline.flush()  # optional: the provider's exit handler flushes too
print("sent; dropped so far:", posthog.drop_counts() or "nothing")
