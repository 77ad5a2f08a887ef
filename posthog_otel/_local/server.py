"""A PostHog-compatible capture server on 127.0.0.1, backed by ``Store``.

It validates like PostHog's capture service: a request with any invalid event is refused
whole with 400 and a message saying which event and what is wrong (nothing is half
accepted); a valid one is stored in one transaction and answered ``{"status": 1}``.
What a peer can cost it (body and inflated size, read time, connections) is bounded by
``serving.Limits``.
"""

from __future__ import annotations

import json
import re
import threading
import uuid as _uuid
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote

from .._inflate import inflate
from . import ui
from .flags import LocalFlags
from .ingest import parse_timestamp
from .serving import BoundedHandler, BoundedHTTPServer, Limits
from .store import Store

BATCH_PATHS = ("/batch", "/batch/")
_REMOTE_CONFIG = re.compile(r"/api/projects/@current/feature_flags/([^/]+)/remote_config/?")
V1_PATH = "/i/v1/analytics/events"


class Invalid(Exception):
    """A request PostHog would refuse; the message says why."""


def validate_batch(payload: Any) -> Tuple[str, List[Dict[str, Any]]]:
    """(api_key, events) of a ``/batch/`` body, or ``Invalid``."""
    if not isinstance(payload, dict):
        raise Invalid("the body must be a JSON object with api_key and batch")
    api_key = payload.get("api_key")
    if not isinstance(api_key, str) or not api_key.strip():
        raise Invalid("api_key is missing: put the project API key in the body's api_key field")
    batch = payload.get("batch")
    if not isinstance(batch, list):
        raise Invalid("batch is missing or not a list of events")
    if not batch:
        raise Invalid("batch is empty")
    if "sent_at" in payload and payload["sent_at"] is not None:
        if not isinstance(payload["sent_at"], str) or parse_timestamp(payload["sent_at"]) is None:
            raise Invalid("sent_at is not an ISO-8601 timestamp")
    for index, event in enumerate(batch):
        problem = _event_problem(event)
        if problem:
            raise Invalid("batch[%d]: %s" % (index, problem))
    return api_key, batch


class Unauthorized(Invalid):
    """Capture V1 without a bearer token."""


def validate_v1(payload: Any, authorization: Optional[str]) -> Tuple[str, List[Dict[str, Any]]]:
    """(api_key, events in ``/batch/`` shape) of a Capture V1 request, or ``Invalid``."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization: Bearer <project API key> is missing")
    if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
        raise Invalid("the body must be a JSON object with created_at and batch")
    if not payload["batch"]:
        raise Invalid("batch is empty")
    events = []
    for index, wire in enumerate(payload["batch"]):
        if not isinstance(wire, dict):
            raise Invalid("batch[%d]: an event must be a JSON object" % index)
        if not wire.get("uuid"):
            raise Invalid("batch[%d]: uuid is missing (Capture V1 requires one)" % index)
        events.append(from_v1_event(wire))
    return validate_batch({"api_key": token.strip(), "batch": events})


def from_v1_event(wire: Dict[str, Any]) -> Dict[str, Any]:
    """A Capture V1 event back in ``/batch/`` shape: options and top-level ids as properties."""
    properties = (
        dict(wire.get("properties") or {}) if isinstance(wire.get("properties"), dict) else wire.get("properties")
    )
    if isinstance(properties, dict):
        options: Dict[str, Any] = wire["options"] if isinstance(wire.get("options"), dict) else {}
        if "process_person_profile" in options:
            properties["$process_person_profile"] = options["process_person_profile"]
        for field, key in (("session_id", "$session_id"), ("window_id", "$window_id")):
            if wire.get(field) is not None:
                properties[key] = wire[field]
    event: Dict[str, Any] = {k: wire[k] for k in ("event", "distinct_id", "uuid", "timestamp") if k in wire}
    event["properties"] = properties
    return event


def _event_problem(event: Any) -> Optional[str]:
    if not isinstance(event, dict):
        return "an event must be a JSON object"
    name = event.get("event")
    if not isinstance(name, str) or not name.strip():
        return "event name is missing or empty"
    distinct_id = event.get("distinct_id")
    if distinct_id is None:
        return "distinct_id is missing"
    if isinstance(distinct_id, bool) or not isinstance(distinct_id, (str, int, float)):
        return "distinct_id must be a string or a number"
    if not str(distinct_id).strip():
        return "distinct_id is empty"
    if event.get("uuid") is not None:
        try:
            _uuid.UUID(str(event["uuid"]))
        except ValueError:
            return "uuid %r is not a valid uuid" % (event["uuid"],)
    if event.get("timestamp") is not None:
        if not isinstance(event["timestamp"], str) or parse_timestamp(event["timestamp"]) is None:
            return "timestamp %r is not an ISO-8601 timestamp" % (event["timestamp"],)
    for key in ("properties", "$set", "$set_once"):
        if key in event and event[key] is not None and not isinstance(event[key], dict):
            return "%s must be a JSON object" % key
    return None


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def refuse_lone_surrogates(raw: bytes, parsed: Any) -> None:
    """``Invalid`` for a body whose text holds a lone UTF-16 surrogate (``"\\ud800"``).

    Python's JSON decoder takes such an escape; PostHog's (Rust's ``serde_json``) refuses the
    body as invalid JSON (400), and SQLite cannot store the string at all (it was a 500 here).
    Only a body with a surrogate escape in it is walked (paired ones, an emoji, are valid).
    """
    if not _SURROGATE_ESCAPE.search(raw):
        return
    stack = [parsed]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            _encodable(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                _encodable(key)
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(
            "the body is not valid JSON: it holds a lone UTF-16 surrogate escape (%s), which is not "
            "text" % ascii(text[:40])
        ) from None


class LocalServer:
    """``with LocalServer(store) as server:`` serves in a background thread at ``server.url``.

    ``flags`` are the feature flags ``/flags/`` answers and ``/flags/definitions`` serves:
    PostHog's definitions format, or ``{"new_dashboard": True, "checkout": "variant-b"}``;
    ``limits`` bound what one peer may cost; ``on_request``, when given, is called with one
    line per request (``POST /batch/ 200 3 event(s)...``). Binding fails with ``OSError``
    (a port in use, say), here, not later.
    """

    def __init__(
        self,
        store: Store,
        port: int = 0,
        host: str = "127.0.0.1",
        flags: Optional[Any] = None,
        limits: Optional[Limits] = None,
        on_request: Optional[Callable[[str], None]] = None,
    ):
        self.store = store
        self.flags = LocalFlags.of(flags, store)
        self.limits = limits or Limits()
        self._httpd = BoundedHTTPServer((host, port), _handler_for(store, self.flags), self.limits, on_request)
        self.port = self._httpd.server_address[1]
        self.url = "http://%s:%d" % (host, self.port)
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "LocalServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="posthog-otel-local", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until ``KeyboardInterrupt`` (the CLI's way)."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _handler_for(store: Store, flags: LocalFlags) -> type:
    class Handler(BoundedHandler):
        server_version = "posthog-otel-local"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path in ("/flags", "/flags/"):
                self.report(flags.handle_post(self, self._read_json), "flags")
                return
            if path not in BATCH_PATHS and path != V1_PATH:
                self._reply(
                    404, {"error": "unknown endpoint %s: this server speaks POST /batch/ and %s" % (path, V1_PATH)}
                )
                return
            v1 = path == V1_PATH
            try:
                payload = self._read_json()
                api_key, events = (
                    validate_v1(payload, self.headers.get("Authorization")) if v1 else validate_batch(payload)
                )
            except Unauthorized as problem:
                self._reply(401, {"type": "authentication_error", "error": str(problem)})
                return
            except Invalid as problem:
                self._reply(400, {"type": "validation_error", "error": str(problem)})
                return
            result = store.ingest(api_key, events)
            detail = "%d event(s) stored, %d duplicate(s)" % (result.accepted, result.duplicates)
            if v1:
                self._reply(200, {"results": {e["uuid"]: {"result": "ok"} for e in events}}, detail)
            else:
                self._reply(200, {"status": 1, "accepted": result.accepted, "duplicates": result.duplicates}, detail)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/flags/definitions"):
                self.report(flags.handle_get(self), "flag definitions")
                return
            remote_config = _REMOTE_CONFIG.fullmatch(self.path.split("?", 1)[0])
            if remote_config is not None:
                self.report(flags.handle_remote_config(self, unquote(remote_config.group(1))), "remote config")
                return
            if ui.serves(self.path):  # the web pages (ui.py)
                self.report(ui.handle(self, store, flags), "page")
                return
            self._reply(200, {"server": "posthog-otel local", "status": "ok"})

        def _read_json(self) -> Any:
            """The body, decoded and parsed; ``HTTPError`` for transport problems (size, time,
            encoding), ``Invalid`` for a body that is not JSON."""
            raw = inflate(self.read_body(), self.headers.get("Content-Encoding") or "", self.limits.max_inflated_bytes)
            try:
                parsed = json.loads(raw)
            except ValueError:
                raise Invalid("the body is not valid JSON") from None
            except RecursionError:  # nested deeper than Python's stack: a 400 like any unusable body
                raise Invalid("the body is JSON nested too deeply") from None
            refuse_lone_surrogates(raw, parsed)
            return parsed

        def _reply(self, status: int, body: Dict[str, Any], detail: str = "") -> None:
            self.reply(status, body)
            self.report(status, detail or str(body.get("error", "")))

    return Handler
