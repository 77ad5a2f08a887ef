"""An example of testing your own code with posthog_otel.testing (run: pytest examples/test_signup_example.py).

The `posthog_local` fixture comes with posthog-otel (a pytest plugin): a local PostHog in
this process and a real OpenTelemetry pipeline delivering to it. Assert on what PostHog
would hold, not on mocks.
"""

import posthog_otel as posthog


def signup(anonymous_id, user_id, email, company):
    """The application code under test."""
    posthog.alias(anonymous_id, user_id)
    posthog.set(user_id, {"email": email, "plan": "free"})
    posthog.set_once(user_id, {"signup_source": "landing_page"})
    posthog.group_identify("company", company, {"name": company.title()}, distinct_id=user_id)
    posthog.capture(user_id, "signup_completed", groups={"company": company})


def test_signup_merges_the_visitor_into_the_user(posthog_local):
    posthog.capture("visitor-1", "page_viewed", {"page": "pricing"})
    signup("visitor-1", "user-42", "jane@example.com", "acme")

    person = posthog_local.person("visitor-1")
    assert person["distinct_ids"] == ["user-42", "visitor-1"]
    assert person["properties"] == {"email": "jane@example.com", "plan": "free", "signup_source": "landing_page"}
    assert posthog_local.group("company", "acme")["properties"] == {"name": "Acme"}
    (signed_up,) = [e for e in posthog_local.events if e["event"] == "signup_completed"]
    assert signed_up["properties"]["$groups"] == {"company": "acme"}
