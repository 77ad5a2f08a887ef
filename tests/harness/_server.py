"""The HTTP side of an adapter for PostHog's SDK compliance harness, shared by both adapters.

The harness drives an SDK through a small REST API (its ``ADAPTER_GUIDE.md``): ``/health``,
``/init``, ``/capture``, ``/flush``, ``/state``, ``/get_feature_flag``, ``/reset``. This
module serves that API on a loopback port the OS chooses (printed as ``PORT <n>`` on the first
line of stdout, which is how the runner finds it) and keeps one SDK session per harness test:
the harness runs tests in parallel and names each with ``?test_id=``.

The harness's mock PostHog tells tests apart by an ``X-Test-Id`` request header. Neither SDK
has a public way to add a header to its requests, so a test's session is given the mock's
URL with ``/t/<test_id>`` after it as its host; the runner's mock server moves that prefix
into the header before the harness sees the request (``tests/harness/run.py``). The SDK
appends its own paths to the host as it always does, and nothing else changes on the wire.

A session (``Session``) is what an adapter implements, with its SDK's public API only.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

#: The batch delay when the harness gives none (``flush_interval_ms``), for both SDKs. Every
#: contract test that captures ends with an explicit flush, or fills ``flush_at``; a timer only
#: adds luck. OpenTelemetry's batch processor (posthog-otel's) exports every delay *period*,
#: not a delay after the first event, so with our 1 s default a test's 3 or 4 captures, a
#: round trip each, straddle a tick now and then and leave in two requests where the
#: contract counts one.
FLUSH_INTERVAL_MS = 60_000


class Session:
    """One SDK client, for one harness test (made from ``/init``'s settings)."""

    def capture(self, request: Dict[str, Any]) -> Optional[str]:
        raise NotImplementedError

    def capture_ai(self, request: Dict[str, Any]) -> Optional[str]:
        """PostHog's dedicated AI capture endpoint (``capture_ai_v0``): PostHog's SDK only."""
        raise NotImplementedError

    def flush(self) -> int:
        """Deliver what is pending; the number of events delivered so far."""
        raise NotImplementedError

    def get_feature_flag(self, request: Dict[str, Any]) -> Any:
        raise NotImplementedError

    def state(self) -> Dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def empty_state(captured: int, sent: int, retries: int = 0) -> Dict[str, Any]:
    """``/state``'s answer. No contract test reads ``requests_made`` (the mock records the
    requests), so it stays empty rather than patching the SDK's HTTP layer to fill it."""
    return {
        "pending_events": max(captured - sent, 0),
        "total_events_captured": captured,
        "total_events_sent": sent,
        "total_retries": retries,
        "last_error": None,
        "requests_made": [],
    }


class Adapter:
    """The sessions by test id (``None``: the harness's sequential mode)."""

    def __init__(self, health: Dict[str, Any], factory: Callable[[Dict[str, Any]], Session]) -> None:
        self.health = {**health, "adapter_version": "1.0.0", "supports_parallel": True}
        self._factory = factory
        self._sessions: Dict[Optional[str], Session] = {}
        self._lock = threading.Lock()

    def handle(self, method: str, path: str, test_id: Optional[str], body: Dict[str, Any]) -> Tuple[int, Any]:
        if (method, path) == ("GET", "/health"):
            return 200, self.health
        if (method, path) == ("POST", "/reset"):
            self._close(test_id)
            return 200, {"success": True}
        if (method, path) == ("POST", "/init"):
            config = dict(body)
            if test_id is not None:
                config["host"] = "%s/t/%s" % (str(config["host"]).rstrip("/"), test_id)
            self._close(test_id)
            created = self._factory(config)
            with self._lock:
                self._sessions[test_id] = created
            return 200, {"success": True}
        with self._lock:
            session = self._sessions.get(test_id)
        if session is None:
            return 400, {"error": "SDK not initialized"}
        if (method, path) == ("POST", "/capture"):
            return 200, {"success": True, "uuid": session.capture(body)}
        if (method, path) == ("POST", "/capture_ai"):
            return 200, {"success": True, "uuid": session.capture_ai(body)}
        if (method, path) == ("POST", "/flush"):
            return 200, {"success": True, "events_flushed": session.flush()}
        if (method, path) == ("GET", "/state"):
            return 200, session.state()
        if (method, path) == ("POST", "/get_feature_flag"):
            return 200, {"success": True, "value": session.get_feature_flag(body)}
        return 404, {"error": "no such endpoint: %s %s" % (method, path)}

    def _close(self, test_id: Optional[str]) -> None:
        with self._lock:
            session = self._sessions.pop(test_id, None)
        if session is not None:
            session.close()

    def close_all(self) -> None:
        with self._lock:
            sessions: List[Session] = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.close()


def _handler(adapter: Adapter) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # the answer's head and body leave at once, not 40 ms apart

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def _answer(self, method: str) -> None:
            url = urlsplit(self.path)
            named = parse_qs(url.query).get("test_id")
            test_id = named[0] if named else None
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
                status, answer = adapter.handle(method, url.path, test_id, body or {})
            except Exception as error:  # reported to the harness, which fails that test with it
                status, answer = 500, {"error": "%s: %s" % (type(error).__name__, error)}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # the runner prints the results
            pass

    return Handler


def serve(adapter: Adapter) -> None:
    """Serve until stdin closes (the runner ends it so, or by terminating the process)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(adapter))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        sys.stdin.read()
    finally:
        server.shutdown()
        adapter.close_all()


def main(sdk_name: str, sdk_version: str, session: Callable[[Dict[str, Any], str, str], Session],
         more_capabilities: Callable[[str], List[str]] = lambda capture_mode: []) -> None:  # fmt: skip
    """``--capture-mode v0|v1 [--compression gzip|deflate|zstd]``: one capture protocol and one
    codec per adapter process (the harness has one ``enable_compression`` for every codec)."""
    parser = argparse.ArgumentParser(description="%s under PostHog's SDK compliance harness" % sdk_name)
    parser.add_argument("--capture-mode", choices=("v0", "v1"), default="v0")
    parser.add_argument("--compression", choices=("gzip", "deflate", "zstd"), default="gzip")
    given = parser.parse_args()
    capabilities = ["capture_v1" if given.capture_mode == "v1" else "capture_v0", "encoding_" + given.compression]
    health = {"sdk_name": sdk_name, "sdk_version": sdk_version,
              "capabilities": capabilities + more_capabilities(given.capture_mode)}  # fmt: skip
    serve(Adapter(health, lambda config: session(config, given.capture_mode, given.compression)))
