# "User Identity Linking",
# from the user and group management docs this API follows (only the import changed).
# Run it against the local PostHog (no account needed):
#   posthog-otel server &        # a PostHog on http://127.0.0.1:8010; `posthog-otel persons` shows what it holds
#   python examples/identity_linking.py
# or against your project: POSTHOG_API_KEY=phc_... POSTHOG_HOST=https://eu.i.posthog.com python examples/identity_linking.py
import os

import posthog_otel as posthog

posthog.api_key = os.environ.get("POSTHOG_API_KEY", "phc_local_examples")
posthog.host = os.environ.get("POSTHOG_HOST", "http://127.0.0.1:8010")

# User starts as anonymous visitor
anonymous_id = "anonymous_user_abc123"
posthog.capture(anonymous_id, "page_viewed", {"page": "landing"})
posthog.capture(anonymous_id, "signup_started")

# User completes registration
identified_id = "user_456"
posthog.capture(identified_id, "signup_completed", {"email": "user@example.com"})

# Link anonymous behavior to identified user
posthog.alias(anonymous_id, identified_id)

# Set user properties after identification
posthog.set(identified_id, {"email": "user@example.com", "plan": "free", "verified": True})
