# "Group Management",
# from the user and group management docs this API follows (only the import changed).
# Run it against the local PostHog (no account needed):
#   posthog-otel server &        # a PostHog on http://127.0.0.1:8010; `posthog-otel persons` shows what it holds
#   python examples/group_management.py
# or against your project: POSTHOG_API_KEY=phc_... POSTHOG_HOST=https://eu.i.posthog.com python examples/group_management.py
import os

import posthog_otel as posthog

posthog.api_key = os.environ.get("POSTHOG_API_KEY", "phc_local_examples")
posthog.host = os.environ.get("POSTHOG_HOST", "http://127.0.0.1:8010")

# Identify a company/organization
posthog.group_identify(
    "company",
    "acme_corp",
    {
        "name": "Acme Corporation",
        "industry": "Technology",
        "size": "Enterprise",
        "plan": "Business",
        "mrr": 5000,
        "employees": 250,
    },
)

# Identify a team within organization
posthog.group_identify(
    "team",
    "engineering",
    {"name": "Engineering Team", "department": "Product", "lead": "jane.doe@acme.com", "members_count": 12},
)

# Update group properties
posthog.group_identify(
    "company",
    "acme_corp",
    {
        "mrr": 5500,  # Updated MRR
        "employees": 275,  # Updated employee count
    },
)
