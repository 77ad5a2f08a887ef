# "Context-Based Property Management",
# from the user and group management docs this API follows (only the import changed).
# Run it against the local PostHog (no account needed):
#   posthog-otel server &        # a PostHog on http://127.0.0.1:8010; `posthog-otel persons` shows what it holds
#   python examples/context_properties.py
# or against your project: POSTHOG_API_KEY=phc_... POSTHOG_HOST=https://eu.i.posthog.com python examples/context_properties.py
import os

import posthog_otel as posthog

posthog.api_key = os.environ.get("POSTHOG_API_KEY", "phc_local_examples")
posthog.host = os.environ.get("POSTHOG_HOST", "http://127.0.0.1:8010")

with posthog.new_context():
    posthog.identify_context("user_456")
    posthog.tag("session_type", "premium")
    posthog.tag("ab_test_group", "variant_b")

    # Tags are automatically included in user properties
    posthog.set({"last_login": "2024-09-07T10:30:00Z", "subscription_status": "active"})

    # Context tags become part of the user profile
    posthog.capture("dashboard_viewed")
