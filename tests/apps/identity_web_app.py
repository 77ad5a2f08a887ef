"""A web app run under `opentelemetry-instrument` with the Flask (or Django) and logging
instrumentation, its spans and logs exported over OTLP (tests/test_identity_signals.py): the
request the PostHog integration identified gives every span and log line the person and
session; the work outside any context (start-up, an anonymous request) gives them none.

Run: POSTHOG_OTEL_CONTEXT_ATTRIBUTES=true opentelemetry-instrument python identity_web_app.py flask|django
(django: with DJANGO_SETTINGS_MODULE=identity_django_settings and this folder on PYTHONPATH)
"""

import logging
import sys

from opentelemetry import trace

log = logging.getLogger("shop")
log.setLevel(logging.INFO)
tracer = trace.get_tracer("shop")

REQUESTS = [("identified", {"X-POSTHOG-DISTINCT-ID": "user-7", "X-POSTHOG-SESSION-ID": "session-7"}), ("anonymous", {})]


def handle(who):
    """What a view does: a log line, a span of its own, a log line inside it."""
    log.info("order placed by %s", who)
    with tracer.start_as_current_span("charge card"):
        log.warning("card charged for %s", who)


def flask_app():
    import flask

    from posthog_otel.integrations.flask import PosthogFlaskIntegration

    app = flask.Flask(__name__)

    @app.route("/order/<who>")
    def order(who):
        handle(who)
        return "ok"

    PosthogFlaskIntegration(app)
    client = app.test_client()
    for who, headers in REQUESTS:
        assert client.get("/order/" + who, headers=headers).status_code == 200


def django_app():
    """The settings and URLs are identity_django_settings (DJANGO_SETTINGS_MODULE)."""
    import django
    from django.test import Client

    django.setup()
    client = Client()
    for who, headers in REQUESTS:
        assert client.get("/order/" + who, headers=headers).status_code == 200


if __name__ == "__main__":
    log.info("starting up")
    with tracer.start_as_current_span("start-up"):
        pass
    {"flask": flask_app, "django": django_app}[sys.argv[1]]()
    log.info("shutting down")
