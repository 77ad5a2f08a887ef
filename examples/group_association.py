# "Group Association Patterns",
# from the user and group management docs this API follows (only the import changed).
# Run it against the local PostHog (no account needed):
#   posthog-otel server &        # a PostHog on http://127.0.0.1:8010; `posthog-otel persons` shows what it holds
#   python examples/group_association.py
# or against your project: POSTHOG_API_KEY=phc_... POSTHOG_HOST=https://eu.i.posthog.com python examples/group_association.py
import os

import posthog_otel as posthog

posthog.api_key = os.environ.get("POSTHOG_API_KEY", "phc_local_examples")
posthog.host = os.environ.get("POSTHOG_HOST", "http://127.0.0.1:8010")

# Multi-level organization structure
posthog.capture(
    "user123",
    "report_generated",
    {"report_type": "monthly_summary"},
    groups={"company": "acme_corp", "division": "north_america", "team": "sales_team_west"},
)

# Feature flag evaluation with groups
enabled = posthog.feature_enabled(
    "new_dashboard",
    "user123",
    groups={"company": "acme_corp"},
    person_properties={"plan": "enterprise"},
    group_properties={"company": {"size": "large", "industry": "tech"}},
)
