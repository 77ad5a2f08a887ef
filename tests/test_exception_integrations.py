"""An exception escaping a web request is one ``$exception`` on the request's person, in the local
PostHog: a plain WSGI app on wsgiref and an ASGI app on uvicorn, over HTTP, with and without
OpenTelemetry's own middleware (which records the same exception on the server span)."""

from __future__ import annotations

import logging
import threading

import pytest
import requests
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import posthog_otel
from posthog_otel.integrations.asgi import PostHogASGIMiddleware
from posthog_otel.integrations.wsgi import PostHogWSGIMiddleware

from .conftest import API_KEY
from .test_web import serve_wsgi  # noqa: F401 (a fixture: wsgiref on 127.0.0.1)

HEADERS = {"X-POSTHOG-DISTINCT-ID": "browser-person", "X-POSTHOG-SESSION-ID": "browser-session"}


@pytest.fixture
def pipeline_to(provider):
    def configure(server, **settings):
        return posthog_otel.configure(api_key=API_KEY, host=server.url, logger_provider=provider,
                                      schedule_delay_millis=50, **settings)  # fmt: skip

    return configure


def checkout(environ, start_response):
    raise ZeroDivisionError("division by zero in the basket total")


def streaming(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"first chunk"
        raise BrokenPipeError("the report generator failed")

    return body()


def test_a_wsgi_app_that_raises_is_one_exception_on_the_requests_person(serve_wsgi, local, pipeline_to):
    server, store = local
    pipeline = pipeline_to(server)
    url = serve_wsgi(PostHogWSGIMiddleware(checkout))
    assert requests.get(url + "/checkout?card=secret", headers=HEADERS, timeout=10).status_code == 500
    assert pipeline.flush()
    (event,) = store.events()
    assert (event["event"], event["distinct_id"]) == ("$exception", "browser-person")
    properties = event["properties"]
    assert properties["$session_id"] == "browser-session" and properties["$request_path"] == "/checkout"
    assert (properties["$exception_level"], properties["$exception_source"]) == ("error", "wsgi.middleware")
    (entry,) = properties["$exception_list"]
    assert (entry["type"], entry["mechanism"]["type"], entry["mechanism"]["handled"]) == (
        "ZeroDivisionError", "middleware", False)  # fmt: skip
    assert entry["stacktrace"]["frames"][-1]["function"] == "checkout"


def test_an_exception_while_streaming_the_body_is_the_requests_too(serve_wsgi, local, pipeline_to):
    server, store = local
    pipeline = pipeline_to(server)
    url = serve_wsgi(PostHogWSGIMiddleware(streaming))
    answer = requests.get(url + "/report", headers=HEADERS, timeout=10)  # cut short after the first chunk
    assert answer.content == b"first chunk"
    assert pipeline.flush()
    (event,) = store.events()
    assert event["distinct_id"] == "browser-person"
    assert event["properties"]["$exception_list"][0]["type"] == "BrokenPipeError"


def test_capture_exceptions_false_sends_nothing(serve_wsgi, local, pipeline_to):
    server, store = local
    pipeline = pipeline_to(server)
    url = serve_wsgi(PostHogWSGIMiddleware(checkout, capture_exceptions=False))
    assert requests.get(url, headers=HEADERS, timeout=10).status_code == 500
    assert pipeline.flush()
    assert store.events() == []


def test_inside_otels_middleware_the_span_record_is_not_sent_twice(serve_wsgi, local, pipeline_to):
    """OTel's WSGI middleware records the exception on the server span; with the span exporter's
    capture_exceptions on, that record is recognised as the one the request already sent."""
    otel_wsgi = pytest.importorskip("opentelemetry.instrumentation.wsgi")
    server, store = local
    pipeline = pipeline_to(server, capture_exceptions=True)
    tracer_provider = TracerProvider()
    span_exporter = posthog_otel.PostHogSpanExporter(api_key=API_KEY, host=server.url, capture_exceptions=True)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter, schedule_delay_millis=50))
    app = otel_wsgi.OpenTelemetryMiddleware(PostHogWSGIMiddleware(checkout), tracer_provider=tracer_provider)
    url = serve_wsgi(app)
    assert requests.get(url, headers=HEADERS, timeout=10).status_code == 500
    assert pipeline.flush()
    tracer_provider.force_flush()
    assert span_exporter.force_flush()
    (event,) = store.events()
    assert event["distinct_id"] == "browser-person" and event["properties"]["$exception_source"] == "wsgi.middleware"
    assert event["properties"]["$trace_id"]  # captured inside the server span
    assert posthog_otel.drop_counts()["exception_duplicate"] == 1
    tracer_provider.shutdown()


async def failing_asgi(scope, receive, send):
    raise PermissionError("the basket belongs to someone else")


def test_an_asgi_app_that_raises_is_one_exception_on_the_requests_person(local, pipeline_to, caplog):
    uvicorn = pytest.importorskip("uvicorn")
    import socket

    server, store = local
    pipeline = pipeline_to(server)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    config = uvicorn.Config(PostHogASGIMiddleware(failing_asgi), log_level="critical", lifespan="off")
    asgi_server = uvicorn.Server(config)
    thread = threading.Thread(target=asgi_server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.CRITICAL, logger="uvicorn.error"):
            answer = requests.get("http://127.0.0.1:%d/basket" % listener.getsockname()[1], headers=HEADERS, timeout=10)
        assert answer.status_code == 500
    finally:
        asgi_server.should_exit = True
        thread.join(10)
        listener.close()
    assert pipeline.flush()
    (event,) = store.events()
    assert (event["distinct_id"], event["properties"]["$exception_source"]) == ("browser-person", "asgi.middleware")
    assert event["properties"]["$exception_list"][0]["type"] == "PermissionError"
