"""The gateway as a WSGI application: ``POST /v1/logs`` (OTLP/HTTP logs) and ``GET /health``.

A request goes: encoding from ``Content-Type`` (protobuf or JSON; the answer uses the same)
-> project key (``Authorization: Bearer``, else ``POSTHOG_API_KEY`` for a request from this
machine) and access -> is that project's spool past its high-water mark (503 +
``Retry-After``)? -> body, bounded in size and time (408) -> gzip/deflate decoding, bounded in
bytes and members -> OTLP records, bounded in objects and time -> ``Operation`` -> PostHog
events (the exporter's own mapping) -> the project's dispatcher. The answer says how many records
were refused and why (``partial_success``); records that are not PostHog operations are
ignored, as the exporter ignores them.

**Order.** Decoding and hand-off happen one request at a time per worker, under one lock,
in the order the requests' bodies finished arriving; the dispatcher keeps that order to
PostHog (through its spool too). So one person's records leave a worker in the order they
reached it. (Decoding is CPU work under the GIL anyway: the lock costs no throughput.)
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from .._config import Settings, redact
from .._delivery.dispatch import MappedEvents
from .._inflate import HTTPError, inflate
from .._log import count_drop, warn_limited
from .._mapping import to_posthog_events
from . import _answers, _metrics
from ._answers import Answer
from ._deadline import Watchdog
from ._otlp import DECODERS, Limits, Malformed, TooLarge, TooSlow
from ._projects import Project, Projects, Refused
from ._settings import GatewaySettings

logger = logging.getLogger("posthog_otel.gateway")

LOGS_PATH = "/v1/logs"
HEALTH_PATHS = ("/health", "/healthz")
_READ_CHUNK = 64 * 1024

_ENCODINGS = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
}

StartResponse = Callable[..., Any]


#: Headers a proxy adds to name the client it relays for (RFC 7239, and the two common older ones).
_PROXY_HEADERS = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP")


class Gateway:
    """The WSGI application. ``start()`` runs in each worker process before (or at) its first
    request; ``close()`` delivers or spools what it holds (a server's worker-exit hook calls
    it; ``atexit`` too)."""

    def __init__(
        self,
        settings: GatewaySettings,
        delivery: Settings,
        transport: Any = None,
        retry_policy: Any = None,
    ) -> None:
        self.settings = settings
        self.projects = Projects(settings, delivery, transport, retry_policy)
        self.counters = _metrics.GatewayCounters()
        self._order = threading.Lock()
        self._watchdog = Watchdog()
        self._pid = os.getpid()
        self._started = 0  # the pid of the process start() ran in
        _metrics.register(self.counters)

    def __repr__(self) -> str:
        return "Gateway(%r, default_key=%r)" % (self.settings, redact(self.projects.default_key))

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self._pid != os.getpid():  # a forked worker of a preloaded app
            self._pid = os.getpid()
            self._order = threading.Lock()
            self.counters.after_fork()
        if self._started != self._pid:
            self.start()
        try:
            status, headers, body = self._route(environ)
        except Exception:  # a bug of ours: answer 500, log it, keep serving
            logger.exception("posthog_otel gateway: internal error on %s %s", environ.get("REQUEST_METHOD"),
                             environ.get("PATH_INFO"))  # fmt: skip
            count_drop("internal_error")
            status, headers, body = _answers.failure(
                "json", 500, "internal error in the gateway (see its log)", close=True
            )
        self.counters.request(status)
        if "gunicorn.socket" not in environ:  # PEP 3333 forbids hop-by-hop headers; gunicorn reads it as
            headers = [h for h in headers if h[0] != "Connection"]  # "close after this" (no unread body drained)
        headers.append(("Content-Length", str(len(body))))
        start_response("%d %s" % (status, _REASONS.get(status, "")), headers)
        return [body] if environ.get("REQUEST_METHOD") != "HEAD" else []

    def start(self) -> None:
        """In this process: open the projects of the keys the gateway knows (its allow-list
        and ``POSTHOG_API_KEY``), so batches an earlier run left in their spools leave now
        rather than at the key's next request; and close at exit."""
        if self._started == os.getpid():
            return
        self._started = os.getpid()
        atexit.register(self.close)
        self.projects.open_known()

    def close(self, budget: Optional[float] = None) -> None:
        """Stop taking requests; deliver what every project holds while PostHog answers
        (within ``budget`` seconds, ``close_budget`` by default); spool the rest."""
        self.projects.close(self.settings.close_budget if budget is None else budget)

    # --- routes --------------------------------------------------------------------------

    def _route(self, environ: Dict[str, Any]) -> Answer:
        path, method = environ.get("PATH_INFO") or "/", environ.get("REQUEST_METHOD") or "GET"
        if path == LOGS_PATH:
            if method != "POST":
                return _with(_answers.failure("json", 405, "use POST for OTLP logs", close=True), ("Allow", "POST"))
            return self._export(environ)
        if path in HEALTH_PATHS and method in ("GET", "HEAD"):
            return self._health()
        if path in ("/v1/traces", "/v1/metrics"):
            return _answers.failure("json", 404, "this gateway takes logs only (POST /v1/logs)", close=True)
        return _answers.failure("json", 404, "not found: OTLP logs go to POST /v1/logs", close=True)

    def _export(self, environ: Dict[str, Any]) -> Answer:
        media = (environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
        encoding = _ENCODINGS.get(media)
        if encoding is None:
            return self._refuse(environ, "json", Refused(415, "Content-Type must be application/x-protobuf or "
                                                              "application/json, not %r" % media[:60]))  # fmt: skip
        try:
            forwarded = any(environ.get(header) for header in _PROXY_HEADERS)
            key = self.projects.key_for(environ.get("HTTP_AUTHORIZATION"), environ.get("REMOTE_ADDR"), forwarded)
            project = self.projects.project(key)
        except Refused as refusal:
            return self._refuse(environ, encoding, refusal)
        try:
            return self._take(environ, encoding, project)
        finally:
            self.projects.release(project)

    def _take(self, environ: Dict[str, Any], encoding: str, project: Project) -> Answer:
        try:
            self.projects.pressure(project)
        except Refused as refusal:
            return self._refuse(environ, encoding, refusal)
        try:
            body = self._read_body(environ)
            raw = inflate(body, environ.get("HTTP_CONTENT_ENCODING") or "", self.settings.max_inflated_bytes)
        except HTTPError as error:
            return self._refuse(environ, encoding, Refused(error.status, str(error)), close=True)
        with self._order:
            try:
                limits = Limits(self.settings.max_objects, self.settings.decode_timeout)
                decoded = DECODERS[encoding](raw, time.time_ns(), limits, self.projects.delivery.capture_exceptions)
            except TooLarge as error:
                return self._refuse(environ, encoding, Refused(413, str(error)), close=False)
            except TooSlow as error:
                return self._refuse(environ, encoding, Refused(503, str(error), retry_after=self.settings.retry_after),
                                    close=False)  # fmt: skip
            except Malformed as error:
                return self._refuse(environ, encoding, Refused(400, str(error)), close=False)
            events, skipped = to_posthog_events(decoded.operations, self.projects.defaults)
            if events and not project.dispatcher.hand_off(MappedEvents(events)):
                return self._refuse(environ, encoding, Refused(503, "the gateway is stopping",
                                                               retry_after=self.settings.retry_after))  # fmt: skip
            if events:
                project.admitted(len(raw))
        skipped = decoded.refused + skipped
        for problem in skipped:
            count_drop(problem.reason)
            warn_limited("gateway:skip:" + problem.reason, "posthog_otel gateway: record refused: %s", problem)
        self.counters.saw(len(events), len(skipped), decoded.records - len(decoded.operations))
        return _answers.success(encoding, skipped)

    def _read_body(self, environ: Dict[str, Any]) -> bytes:
        """The body as sent (``Content-Length`` or chunked), at most ``max_body_bytes``, within
        ``read_timeout``: ``HTTPError`` 400/408/413 otherwise."""
        limit = self.settings.max_body_bytes
        text = (environ.get("CONTENT_LENGTH") or "").strip()
        if text and not text.isdigit():
            raise HTTPError(400, "Content-Length %r is not a number of bytes" % text[:40])
        if text and int(text) > limit:
            raise HTTPError(413, "the body is larger than %d bytes (POSTHOG_OTEL_GATEWAY_MAX_BODY_BYTES)" % limit)
        want = int(text) if text else limit + 1
        stream = environ["wsgi.input"]
        parts: List[bytes] = []
        size = 0
        with self._watchdog.deadline(environ.get("gunicorn.socket"), self.settings.read_timeout) as timer:
            try:
                while size < want:
                    chunk = stream.read(min(_READ_CHUNK, want - size))
                    if not chunk:
                        break
                    parts.append(chunk)
                    size += len(chunk)
            except Exception:  # the server's reader: a peer gone, a bad chunk, our deadline
                if not timer.expired:
                    raise HTTPError(
                        400, "the body could not be read (connection closed, or bad chunked encoding)"
                    ) from None
            if timer.expired:
                raise HTTPError(408, "the body did not arrive within %g s" % self.settings.read_timeout)
        if size > limit:
            raise HTTPError(413, "the body is larger than %d bytes (POSTHOG_OTEL_GATEWAY_MAX_BODY_BYTES)" % limit)
        if text and size < want:
            raise HTTPError(400, "the body ended before its Content-Length")
        return b"".join(parts)

    def _refuse(self, environ: Dict[str, Any], encoding: str, refusal: Refused, close: bool = True) -> Answer:
        status = refusal.status
        if status >= 500 or status in (401, 403):
            level = logging.WARNING
        else:
            level = logging.INFO
        warn_limited("gateway:refused:%d" % status, "posthog_otel gateway: %d for a request from %s: %s", status,
                     environ.get("REMOTE_ADDR") or "?", refusal, level=level)  # fmt: skip
        return _answers.failure(encoding, status, str(refusal), refusal.retry_after, close=close)

    def _health(self) -> Answer:
        projects = [
            {"key": key, **{name: stats[name] for name in _HEALTH_STATS}, "dropped": stats["dropped"]}
            for key, stats in self.projects.snapshot()
        ]
        stopping = self.projects.closed
        document = {"status": "stopping" if stopping else "ok", "pid": os.getpid(), **self.counters.snapshot(),
                    "projects": projects}  # fmt: skip
        body = json.dumps(document).encode("utf-8")
        return 503 if stopping else 200, [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body


_HEALTH_STATS = ("exported", "retried", "spooled", "drained", "memory_events", "spool_batches", "spool_bytes",
                 "spool_oldest_age_seconds")  # fmt: skip

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required", 413: "Content Too Large",
            415: "Unsupported Media Type", 500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


def _with(answer: Answer, header: Tuple[str, str]) -> Answer:
    status, headers, body = answer
    return status, headers + [header], body
