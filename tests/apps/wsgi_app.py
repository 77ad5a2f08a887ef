"""A WSGI app for gunicorn --preload: configured once in the master, used in every worker."""

import os

import posthog_otel as posthog

posthog.configure(schedule_delay_millis=100)  # POSTHOG_API_KEY / POSTHOG_HOST from the environment


def app(environ, start_response):
    request = environ.get("QUERY_STRING", "")
    posthog.set("request-%s" % request, {"worker": os.getpid()})
    posthog.capture("request-%s" % request, "served", {"worker": os.getpid()})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
