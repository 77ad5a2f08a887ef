"""Builds the SDK from a declarative configuration file, then emits."""

import sys

from opentelemetry.configuration import configure_sdk, load_config_file

import posthog_otel as posthog

configure_sdk(load_config_file(sys.argv[1]))
posthog.set("declared", {"via": "config file"})
