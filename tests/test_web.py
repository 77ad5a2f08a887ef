"""Web requests: a context per request, its person from PostHog's tracing headers or the
application, its tags as PostHog's SDK writes them, and ``user.id`` / ``session.id`` on
the server span.  Real servers on 127.0.0.1 (wsgiref, uvicorn) driven over HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import posthog_otel as posthog
from posthog_otel import _state
from posthog_otel._text import is_sendable
from posthog_otel.integrations.asgi import PostHogASGIMiddleware
from posthog_otel.integrations.wsgi import PostHogWSGIMiddleware

HEADERS = {
    "X-POSTHOG-DISTINCT-ID": "browser-person",
    "X-POSTHOG-SESSION-ID": "browser-session",
    "User-Agent": "probe/1",
}


class Ended(SimpleSpanProcessor):
    """Spans in memory, and a wait for the server spans (which end after the client has its answer)."""

    def __init__(self):
        self.exporter = InMemorySpanExporter()
        super().__init__(self.exporter)
        self.changed = threading.Condition()

    def on_end(self, span):
        super().on_end(span)
        with self.changed:
            self.changed.notify_all()

    def server_spans(self, count):
        def found():
            return [s for s in self.exporter.get_finished_spans() if s.kind.name == "SERVER"]

        with self.changed:
            assert self.changed.wait_for(lambda: len(found()) >= count, timeout=10)
        return found()


@pytest.fixture
def spans():
    ended = Ended()
    provider = TracerProvider()
    provider.add_span_processor(ended)
    yield provider, ended
    provider.shutdown()


def by_event(server, pipeline, count):
    pipeline.flush()
    events = server.wait_for_events(count)
    return {e["event"]: e for e in events}


# --- WSGI ---------------------------------------------------------------------------------------


def wsgi_view(environ, start_response):
    posthog.capture("viewed")
    posthog.set({"plan": "pro"})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [(posthog.get_context_distinct_id() or "-").encode()]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve_wsgi():
    servers = []

    def serve(app):
        server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True).start()
        servers.append(server)
        return "http://127.0.0.1:%d" % server.server_port

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_wsgi_request_takes_the_tracing_headers_and_tags_the_request(serve_wsgi, server, pipeline):
    url = serve_wsgi(PostHogWSGIMiddleware(wsgi_view))
    answer = requests.get(url + "/orders/7?token=secret", headers=HEADERS, timeout=10)
    assert answer.text == "browser-person"
    events = by_event(server, pipeline, 2)
    viewed, person = events["viewed"], events["$set"]
    assert viewed["distinct_id"] == person["distinct_id"] == "browser-person"
    properties = viewed["properties"]
    assert properties["$session_id"] == "browser-session"
    assert properties["$current_url"] == url + "/orders/7"  # no query string: secrets live there
    assert (properties["$request_method"], properties["$request_path"]) == ("GET", "/orders/7")
    assert properties["$user_agent"] == properties["$raw_user_agent"] == "probe/1"
    assert person["$set"]["plan"] == "pro" and person["$set"]["$request_path"] == "/orders/7"


def test_wsgi_contexts_do_not_bleed_between_requests(serve_wsgi, server, pipeline):
    url = serve_wsgi(PostHogWSGIMiddleware(wsgi_view))
    assert requests.get(url + "/a", headers=HEADERS, timeout=10).text == "browser-person"
    assert requests.get(url + "/b", timeout=10).text == "-"  # same server thread, no headers
    pipeline.flush()
    events = server.wait_for_events(3)  # the second request's set() has no person: dropped
    anonymous = [e for e in events if e["properties"].get("$request_path") == "/b"]
    assert [e["properties"]["$process_person_profile"] for e in anonymous] == [False]
    assert posthog.drop_counts() == {"no_distinct_id": 1}


def test_wsgi_the_application_callback_wins_over_headers_and_headers_can_be_ignored(serve_wsgi, server, pipeline):
    def logged_in(environ):
        return environ.get("HTTP_X_USER")  # an application's own authentication

    url = serve_wsgi(PostHogWSGIMiddleware(wsgi_view, distinct_id=logged_in, tags=lambda environ: {"tenant": "t1"}))
    assert requests.get(url, headers={**HEADERS, "X-User": "user_456"}, timeout=10).text == "user_456"
    assert requests.get(url, headers=HEADERS, timeout=10).text == "browser-person"  # no user: the header
    untrusting = serve_wsgi(PostHogWSGIMiddleware(wsgi_view, tracing_headers=False))
    assert requests.get(untrusting, headers=HEADERS, timeout=10).text == "-"
    pipeline.flush()
    events = server.wait_for_events(5)
    assert events[0]["properties"]["tenant"] == "t1"
    assert "$session_id" not in events[-1]["properties"]


def test_wsgi_a_failing_callback_is_said_and_the_request_goes_on(serve_wsgi, server, pipeline, caplog):
    caplog.set_level(logging.WARNING, logger="posthog_otel")

    def broken(environ):
        raise LookupError("no session store")

    url = serve_wsgi(PostHogWSGIMiddleware(wsgi_view, distinct_id=broken, tags=lambda environ: ["not", "a", "map"]))
    answer = requests.get(url, headers=HEADERS, timeout=10)
    assert (answer.status_code, answer.text) == (200, "browser-person")
    assert "the distinct_id callback raised LookupError" in caplog.text
    assert "the tags callback returned ['not', 'a', 'map'], not a map" in caplog.text


def test_wsgi_server_span_gets_user_and_session(serve_wsgi, server, pipeline, spans):
    otel_wsgi = pytest.importorskip("opentelemetry.instrumentation.wsgi")
    provider, ended = spans
    app = otel_wsgi.OpenTelemetryMiddleware(PostHogWSGIMiddleware(wsgi_view), tracer_provider=provider)
    url = serve_wsgi(app)
    requests.get(url + "/orders", headers=HEADERS, timeout=10)
    requests.get(url + "/anonymous", timeout=10)
    first, second = ended.server_spans(2)
    assert (first.attributes["user.id"], first.attributes["session.id"]) == ("browser-person", "browser-session")
    assert "user.id" not in second.attributes


def test_wsgi_a_streamed_body_is_produced_inside_the_context_and_an_error_closes_it(server, pipeline):
    seen = []

    def streaming(environ, start_response):
        start_response("200 OK", [])

        def body():
            seen.append(posthog.get_context_distinct_id())
            yield b"x"

        return body()

    def failing(environ, start_response):
        raise RuntimeError("app bug")

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_POSTHOG_DISTINCT_ID": "streamer"}
    response = PostHogWSGIMiddleware(streaming)(dict(environ), lambda *args: None)
    assert b"".join(response) == b"x"
    response.close()
    assert seen == ["streamer"] and posthog.get_context_distinct_id() is None
    with pytest.raises(RuntimeError):
        PostHogWSGIMiddleware(failing)(dict(environ), lambda *args: None)
    assert posthog.get_context_distinct_id() is None


latin1 = st.text(alphabet=st.characters(max_codepoint=255))  # what WSGI servers hand over
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@settings(max_examples=80, deadline=None)
@given(latin1, latin1, latin1, st.one_of(st.none(), st.text(), st.integers()))
def test_wsgi_any_request_reaches_the_app_with_a_context_that_closes(person, session, path, callback_answer):
    _state.raise_internal_errors = True
    seen = []

    def app(environ, start_response):
        seen.append((posthog.get_context_distinct_id(), posthog.get_context_session_id(), posthog.get_tags()))
        return [b""]

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "wsgi.url_scheme": "http",
        "HTTP_HOST": "example.test",
        "HTTP_X_POSTHOG_DISTINCT_ID": person,
        "HTTP_X_POSTHOG_SESSION_ID": session,
    }
    response = PostHogWSGIMiddleware(app, distinct_id=lambda environ: callback_answer)(environ, lambda *a: None)
    response.close()
    ((seen_person, seen_session, tags),) = seen
    if callback_answer is not None and str(callback_answer) != "":
        expected = str(callback_answer)
        assert seen_person == (expected if is_sendable(expected) else None)  # the application's word wins
    for header in (seen_person if callback_answer is None else None, seen_session):
        assert header is None or (0 < len(header) <= 1000 and not CONTROL.search(header) and header == header.strip())
    assert all(isinstance(key, str) and is_sendable(key) for key in tags)
    assert posthog.get_context_distinct_id() is None  # closed


# --- ASGI ---------------------------------------------------------------------------------------


async def asgi_view(scope, receive, send):
    async def in_a_task():
        return posthog.capture("viewed_in_task")

    posthog.capture("viewed")
    await asyncio.create_task(in_a_task())
    body = (posthog.get_context_distinct_id() or "-").encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def serve_asgi():
    uvicorn = pytest.importorskip("uvicorn")
    running = []

    def serve(app):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # connections wait in the backlog until the server's loop takes them
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        asgi_server = uvicorn.Server(config)
        thread = threading.Thread(target=asgi_server.run, kwargs={"sockets": [listener]}, daemon=True)
        thread.start()
        running.append((asgi_server, thread, listener))
        return "http://127.0.0.1:%d" % listener.getsockname()[1]

    yield serve
    for asgi_server, thread, listener in running:
        asgi_server.should_exit = True
        thread.join(10)
        listener.close()


def test_asgi_request_takes_the_tracing_headers_and_tasks_inherit_it(serve_asgi, server, pipeline):
    url = serve_asgi(PostHogASGIMiddleware(asgi_view))
    answer = requests.get(url + "/orders/7?token=secret", headers=HEADERS, timeout=10)
    assert answer.text == "browser-person"
    assert requests.get(url + "/anonymous", timeout=10).text == "-"
    events = server.wait_for_events(4) if pipeline.flush() else []
    named = [e for e in events if e["properties"]["$request_path"] == "/orders/7"]
    assert {e["event"] for e in named} == {"viewed", "viewed_in_task"}
    for event in named:
        assert event["distinct_id"] == "browser-person"
        assert event["properties"]["$session_id"] == "browser-session"
        assert event["properties"]["$current_url"] == url + "/orders/7"
        assert event["properties"]["$request_method"] == "GET"
        assert event["properties"]["$user_agent"] == "probe/1"
    anonymous = [e for e in events if e["properties"]["$request_path"] == "/anonymous"]
    assert [e["properties"]["$process_person_profile"] for e in anonymous] == [False, False]


def test_asgi_async_callback_and_server_span(serve_asgi, server, pipeline, spans):
    otel_asgi = pytest.importorskip("opentelemetry.instrumentation.asgi")
    provider, ended = spans

    async def logged_in(scope):
        return dict(scope["headers"]).get(b"x-user", b"").decode() or None

    app = otel_asgi.OpenTelemetryMiddleware(
        PostHogASGIMiddleware(asgi_view, distinct_id=logged_in), tracer_provider=provider
    )
    url = serve_asgi(app)
    assert requests.get(url, headers={**HEADERS, "X-User": "user_456"}, timeout=10).text == "user_456"
    servers = ended.server_spans(1)
    assert [(s.attributes["user.id"], s.attributes["session.id"]) for s in servers] == [("user_456", "browser-session")]


def test_asgi_lifespan_and_other_scopes_pass_through():
    calls = []

    async def app(scope, receive, send):
        calls.append((scope["type"], posthog.get_context_distinct_id()))

    middleware = PostHogASGIMiddleware(app, distinct_id=lambda scope: "never-asked")
    asyncio.run(middleware({"type": "lifespan"}, None, None))
    asyncio.run(middleware({"type": "http", "headers": [(b"x-posthog-distinct-id", b"\xff\xfe")]}, None, None))
    assert calls == [("lifespan", None), ("http", "never-asked")]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([b"x-posthog-distinct-id", b"x-posthog-session-id", b"host", b"user-agent"]),
            st.binary(max_size=50),
        ),
        max_size=6,
    ),
    st.one_of(st.text(), st.none(), st.integers()),
)
def test_asgi_any_headers_reach_the_app_with_a_context_that_closes(headers, path):
    _state.raise_internal_errors = True
    calls = []

    async def app(scope, receive, send):
        calls.append((posthog.get_context_distinct_id(), posthog.get_tags()))

    scope = {"type": "http", "method": "GET", "scheme": "http", "path": path, "headers": headers}
    asyncio.run(PostHogASGIMiddleware(app)(scope, None, None))
    ((person, tags),) = calls
    assert person is None or (0 < len(person) <= 1000 and not CONTROL.search(person))
    assert all(isinstance(value, str) for value in tags.values())
    assert posthog.get_context_distinct_id() is None


def test_a_finished_request_leaves_no_open_context_behind(server, pipeline, caplog):
    """Closed means closed: a later personless capture in another thread is not taken for
    work that left this request's context behind."""
    caplog.set_level(logging.WARNING, logger="posthog_otel")

    async def app(scope, receive, send):
        posthog.capture("in_request")

    scope = {"type": "http", "headers": [(b"x-posthog-distinct-id", b"user_456")]}
    asyncio.run(PostHogASGIMiddleware(app)(scope, None, None))
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_POSTHOG_DISTINCT_ID": "user_456"}
    PostHogWSGIMiddleware(lambda environ, start_response: [b""])(environ, lambda *a: None).close()
    worker = threading.Thread(target=posthog.capture, args=("background",))
    worker.start()
    worker.join()
    assert len(by_event(server, pipeline, 2)) == 2
    assert posthog.drop_counts() == {} and "personless" not in caplog.text
