"""``posthog_otel.integrations.flask.PosthogFlaskIntegration`` in a real Flask app (its test
client), against PostHog's own integration of the same name (its SDK 7.91.1)."""

from __future__ import annotations

import pytest

flask = pytest.importorskip("flask")

import posthog_otel  # noqa: E402
from posthog_otel.integrations.flask import PosthogFlaskIntegration  # noqa: E402

from .conftest import API_KEY  # noqa: E402
from .test_django import drop_library  # noqa: E402

REQUESTS = [
    {},
    {"X-POSTHOG-DISTINCT-ID": "browser-1", "X-POSTHOG-SESSION-ID": "session-1", "User-Agent": "Mozilla/5.0"},
]


def make_app(sdk, integration):
    app = flask.Flask(__name__)

    @app.route("/items/<int:item>")
    def item(item):
        sdk.capture("viewed", properties={"item": item})
        return "ok"

    @app.route("/fail")
    def fail():
        raise LookupError("no such order")

    integration(app)
    return app


def test_the_events_of_a_request_are_posthogs_integrations(server, pipeline):
    posthog_sdk = pytest.importorskip("posthog")
    from posthog.integrations.flask import PosthogFlaskIntegration as Theirs

    theirs = posthog_sdk.Posthog(API_KEY, host=server.url)
    saved = posthog_sdk.default_client
    posthog_sdk.default_client = theirs
    try:
        app = make_app(posthog_sdk, Theirs)
        for headers in REQUESTS:
            app.test_client().get("/items/7?token=secret", headers=headers)
        theirs.flush()
    finally:
        posthog_sdk.default_client = saved
        theirs.shutdown()
    expected = [drop_library(e) for e in server.events]
    server.reset()
    app = make_app(posthog_otel, PosthogFlaskIntegration)
    for headers in REQUESTS:
        app.test_client().get("/items/7?token=secret", headers=headers)
    pipeline.flush()
    assert [drop_library(e) for e in server.events] == expected
    assert expected[1]["properties"]["$request_route"] == "/items/<int:item>"


def test_a_distinct_id_callback_sees_the_request(server, pipeline):
    app = make_app(
        posthog_otel,
        lambda app: PosthogFlaskIntegration(
            app,
            distinct_id=lambda request: request.args.get("user"),
            extra_properties=lambda request: {"tenant": "acme"},
        ),
    )
    app.test_client().get("/items/1?user=u-9")
    pipeline.flush()
    (event,) = server.events
    assert (event["distinct_id"], event["properties"]["tenant"]) == ("u-9", "acme")
    assert event["properties"]["$current_url"] == "http://localhost/items/1"  # no query string


def test_an_unhandled_exception_is_sent_when_asked_and_filters_apply(server, pipeline):
    app = make_app(
        posthog_otel,
        lambda app: PosthogFlaskIntegration(
            app, capture_exceptions=True, request_filter=lambda request: "/items/2" not in request.path
        ),
    )
    assert app.test_client().get("/fail", headers={"X-POSTHOG-DISTINCT-ID": "browser-1"}).status_code == 500
    app.test_client().get("/items/2", headers={"X-POSTHOG-DISTINCT-ID": "browser-2"})
    pipeline.flush()
    first, second = server.events
    assert (first["event"], first["distinct_id"]) == ("$exception", "browser-1")
    assert second["properties"]["$process_person_profile"] is False  # filtered: no context
    assert posthog_otel.get_context_distinct_id() is None  # every context closed


def test_registering_twice_is_refused():
    app = flask.Flask(__name__)
    PosthogFlaskIntegration(app)
    with pytest.raises(RuntimeError, match="already initialized"):
        PosthogFlaskIntegration(app)
