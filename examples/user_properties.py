# "User Property Management",
# from the user and group management docs this API follows (only the import changed).
# Run it against the local PostHog (no account needed):
#   posthog-otel server &        # a PostHog on http://127.0.0.1:8010; `posthog-otel persons` shows what it holds
#   POSTHOG_HOST=http://127.0.0.1:8010 python examples/user_properties.py
# The line below sets the key, as PostHog's docs do; POSTHOG_HOST (or posthog.host = ...) says where to send.
import posthog_otel as posthog

# Configure PostHog
posthog.api_key = "phc_your_project_api_key"

# Set user properties (overwrites existing)
posthog.set(
    "user123",
    {
        "email": "user@example.com",
        "name": "John Doe",
        "plan": "premium",
        "signup_date": "2024-01-15",
        "trial_end": "2024-02-15",
    },
)

# Set properties only if they don't exist
posthog.set_once(
    "user123", {"first_visit": "2024-01-10", "initial_referrer": "google.com", "signup_source": "landing_page"}
)

# Using context for automatic user identification
with posthog.new_context():
    posthog.identify_context("user123")

    # User ID automatically applied from context
    posthog.set({"last_active": "2024-09-07", "feature_usage_count": 42})
