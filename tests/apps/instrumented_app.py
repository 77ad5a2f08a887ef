"""An application that only calls the operations: all configuration comes from the environment."""

import logging

import posthog_otel as posthog

logging.getLogger("app").warning("an application log line, not a PostHog operation")
posthog.set("user123", {"plan": "premium"})
with posthog.new_context():
    posthog.identify_context("user123")
    posthog.tag("source", "instrumented")
    posthog.capture("dashboard_viewed")
posthog.group_identify("company", "acme_corp", {"name": "Acme"})
posthog.alias("anonymous_abc", "user123")
# no flush: the SDK's atexit shutdown must deliver
