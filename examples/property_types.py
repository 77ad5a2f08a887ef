# "Supported Property Types" and "Property Naming Conventions",
# from the user and group management docs this API follows (only the import changed).
# Run it against the local PostHog (no account needed):
#   posthog-otel server &        # a PostHog on http://127.0.0.1:8010; `posthog-otel persons` shows what it holds
#   python examples/property_types.py
# or against your project: POSTHOG_API_KEY=phc_... POSTHOG_HOST=https://eu.i.posthog.com python examples/property_types.py
import os

import posthog_otel as posthog

posthog.api_key = os.environ.get("POSTHOG_API_KEY", "phc_local_examples")
posthog.host = os.environ.get("POSTHOG_HOST", "http://127.0.0.1:8010")

# Strings
posthog.set("user123", {"name": "John Doe", "plan": "premium"})

# Numbers
posthog.set("user123", {"age": 28, "score": 95.5})

# Booleans
posthog.set("user123", {"verified": True, "trial_expired": False})

# Dates (as ISO strings)
posthog.set("user123", {"signup_date": "2024-01-15T10:30:00Z", "last_active": "2024-09-07"})

# Arrays
posthog.set(
    "user123", {"interests": ["technology", "sports", "music"], "visited_pages": ["/home", "/about", "/contact"]}
)

# Good - clear, consistent naming
posthog.set(
    "user123",
    {
        "email": "user@example.com",
        "first_name": "John",
        "last_name": "Doe",
        "signup_date": "2024-01-15",
        "subscription_tier": "premium",
        "feature_flags_enabled": ["new_ui", "beta_features"],
    },
)

# Avoid - inconsistent or unclear names
posthog.set(
    "user123",
    {
        "Email": "user@example.com",  # Inconsistent case
        "fName": "John",  # Abbreviated
        "user_registered": "2024-01-15",  # Inconsistent naming
        "tier": "premium",  # Could be ambiguous
    },
)
