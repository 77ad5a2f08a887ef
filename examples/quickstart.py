"""posthog_otel in an application that sets up OpenTelemetry in code.

Run it against the local PostHog (no account needed), or against your project:

    posthog-otel server &
    POSTHOG_API_KEY=phc_local POSTHOG_HOST=http://127.0.0.1:8010 python examples/quickstart.py
    POSTHOG_API_KEY=phc_... POSTHOG_HOST=https://eu.i.posthog.com python examples/quickstart.py

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
