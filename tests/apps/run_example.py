"""Run an example file as written, after installing a PostHog pipeline from the environment."""

import runpy
import sys

import posthog_otel

posthog_otel.configure()  # POSTHOG_API_KEY and POSTHOG_HOST come from the environment
runpy.run_path(sys.argv[1], run_name="__main__")
