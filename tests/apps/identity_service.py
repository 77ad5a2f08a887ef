"""A downstream service for the identity tests: a WSGI app behind OpenTelemetry's WSGI
middleware (which extracts the W3C headers) and posthog_otel's (a context per request).

Prints its port, serves on 127.0.0.1 until stdin closes; each request captures
``downstream_viewed`` and flushes, and answers with the person it saw.
"""

import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

import posthog_otel as posthog
from posthog_otel.integrations.wsgi import PostHogWSGIMiddleware

pipeline = posthog.configure(schedule_delay_millis=50)  # key, host, propagate_identity: environment


def app(environ, start_response):
    posthog.capture("downstream_viewed")
    pipeline.flush()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [(posthog.get_context_distinct_id() or "").encode()]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", 0, OpenTelemetryMiddleware(PostHogWSGIMiddleware(app)), handler_class=QuietHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_port, flush=True)
sys.stdin.read()
server.shutdown()
pipeline.shutdown()
