"""Done when (issue 22): a real app under `opentelemetry-instrument` with the Flask or Django and
logging instrumentation, identified by the PostHog integration, exports spans and logs over OTLP
(to a collector stand-in on 127.0.0.1) that all carry the person and session; without a context,
none do. tests/apps/identity_web_app.py is the app."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import API_KEY
from .support import child_env

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

APP = Path(__file__).parent / "apps" / "identity_web_app.py"
BIN = Path(sys.executable).parent
PERSON = {"posthogDistinctId": "user-7", "user.id": "user-7", "posthog.distinct_id": "user-7"}
SESSION = {"sessionId": "session-7", "session.id": "session-7", "$session_id": "session-7"}
NAMES = set(PERSON) | set(SESSION)


class Collector:
    """An OTLP/HTTP receiver on 127.0.0.1: decodes what arrives at /v1/traces and /v1/logs."""

    def __init__(self):
        self.spans, self.logs = [], []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                collector.receive(self.path, body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def receive(self, path, body):
        if path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            self.spans += [(s.name, _attributes(s.attributes)) for r in request.resource_spans for scope in r.scope_spans
                           for s in scope.spans]  # fmt: skip
        elif path == "/v1/logs":
            request = ExportLogsServiceRequest.FromString(body)
            self.logs += [(r.body.string_value, _attributes(r.attributes)) for rl in request.resource_logs
                          for scope in rl.scope_logs for r in scope.log_records]  # fmt: skip

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _url(attributes):
    """The server span's path, under whichever semantic conventions the instrumentation follows."""
    return attributes.get("http.target") or attributes.get("url.path") or attributes.get("http.url") or ""


def _attributes(items):
    return {item.key: item.value.string_value for item in items}


@pytest.fixture
def collector():
    running = Collector()
    yield running
    running.close()


@pytest.mark.parametrize("framework", ["flask", "django"])
def test_every_span_and_log_of_an_identified_request_carries_the_person_and_no_other_does(framework, collector, server):
    pytest.importorskip(framework)
    pytest.importorskip("opentelemetry.instrumentation.%s" % framework)
    pytest.importorskip("opentelemetry.instrumentation.logging")
    instrument = BIN / "opentelemetry-instrument"
    done = __import__("subprocess").run(
        [str(instrument), sys.executable, str(APP), framework], capture_output=True, text=True, timeout=120,
        env=child_env(
            OTEL_TRACES_EXPORTER="otlp", OTEL_LOGS_EXPORTER="otlp,posthog", OTEL_METRICS_EXPORTER="none",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
            OTEL_SERVICE_NAME="shop", POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url,
            POSTHOG_OTEL_CONTEXT_ATTRIBUTES="true", PYTHONPATH=str(APP.parent),
            **({"DJANGO_SETTINGS_MODULE": "identity_django_settings"} if framework == "django" else {}),
        ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    logs = {body: attributes for body, attributes in collector.logs if body}
    spans = [(name, attributes) for name, attributes in collector.spans]
    identified = [attributes for body, attributes in logs.items() if body.endswith(" identified")]
    identified += [attributes for name, attributes in spans if name == "charge card"][:1]
    identified += [
        attributes for name, attributes in spans if name.startswith("GET") and _url(attributes).endswith("identified")
    ]
    others = [attributes for body, attributes in logs.items() if not body.endswith(" identified")]
    others += [attributes for name, attributes in spans if name == "charge card"][1:]
    others += [attributes for name, attributes in spans
               if name == "start-up" or (name.startswith("GET") and _url(attributes).endswith("anonymous"))]  # fmt: skip
    assert len(identified) == 4 and len(others) >= 6, (collector.spans, collector.logs)
    for attributes in identified:
        assert {k: attributes.get(k) for k in NAMES} == {**PERSON, **SESSION}, attributes
    for attributes in others:
        assert not NAMES & set(attributes), attributes
