"""PostHog's lifecycle calls under `opentelemetry-instrument` (no configure(), no api_key in code)."""

import posthog_otel as posthog

posthog.set("user123", {"plan": "premium"})
print(posthog.flush(10))  # delivered before this line prints, not at exit
print(posthog.shutdown())
print(posthog.set("user123", {"plan": "late"}))
print(posthog.drop_counts())
