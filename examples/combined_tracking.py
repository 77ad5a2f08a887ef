# "Combined User and Group Tracking",
# from the user and group management docs this API follows (only the import changed).
# Run it against the local PostHog (no account needed):
#   posthog-otel server &        # a PostHog on http://127.0.0.1:8010; `posthog-otel persons` shows what it holds
#   python examples/combined_tracking.py
# or against your project: POSTHOG_API_KEY=phc_... POSTHOG_HOST=https://eu.i.posthog.com python examples/combined_tracking.py
import os

import posthog_otel as posthog

posthog.api_key = os.environ.get("POSTHOG_API_KEY", "phc_local_examples")
posthog.host = os.environ.get("POSTHOG_HOST", "http://127.0.0.1:8010")

# Set up user with group associations
user_id = "user_789"
company_id = "company_xyz"
team_id = "team_frontend"

# Identify user properties
posthog.set(
    user_id, {"name": "Alice Smith", "role": "Senior Developer", "department": "Engineering", "hire_date": "2023-06-01"}
)

# Identify company
posthog.group_identify(
    "company", company_id, {"name": "XYZ Startup", "industry": "SaaS", "size": "Series A", "location": "San Francisco"}
)

# Identify team
posthog.group_identify(
    "team", team_id, {"name": "Frontend Team", "tech_stack": "React", "team_lead": "bob.johnson@xyz.com"}
)

# Track events with group context
posthog.capture(
    user_id, "feature_used", {"feature": "advanced_dashboard"}, groups={"company": company_id, "team": team_id}
)
