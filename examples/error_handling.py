# "Validation and Fallbacks",
# from the user and group management docs this API follows (only the import changed).
# Run it against the local PostHog (no account needed):
#   posthog-otel server &        # a PostHog on http://127.0.0.1:8010; `posthog-otel persons` shows what it holds
#   python examples/error_handling.py
# or against your project: POSTHOG_API_KEY=phc_... POSTHOG_HOST=https://eu.i.posthog.com python examples/error_handling.py
import os

import posthog_otel as posthog

posthog.api_key = os.environ.get("POSTHOG_API_KEY", "phc_local_examples")
posthog.host = os.environ.get("POSTHOG_HOST", "http://127.0.0.1:8010")

# Properties are automatically validated
posthog.set(
    "user123",
    {
        "valid_string": "hello",
        "valid_number": 42,
        "invalid_function": lambda x: x,  # Dropped - not serializable
        "nested_object": {"key": "value"},  # Flattened automatically
    },
)

# Automatic fallback for missing distinct_id
with posthog.new_context():
    # No context user set - operation is no-op
    posthog.set({"property": "value"})  # Does nothing

    posthog.identify_context("user123")
    posthog.set({"property": "value"})  # Works correctly
