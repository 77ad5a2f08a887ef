"""PostHog's ``PosthogFlaskIntegration`` for Flask, by the same name and arguments::

    from posthog_otel.integrations.flask import PosthogFlaskIntegration

    app = Flask(__name__)
    PosthogFlaskIntegration(app, distinct_id=lambda request: current_user_id())   # or init_app(app)

Each request runs in a fresh context (the same core as ``PostHogWSGIMiddleware``), opened in a
``before_request`` function, so the callbacks see Flask's ``request`` and ``g``, and closed in
``teardown_request``. The person is ``distinct_id(request)`` (ours: PostHog's integration has only
the headers), else the ``X-POSTHOG-DISTINCT-ID`` header; the session ``X-POSTHOG-SESSION-ID``; the
tags PostHog's (``$current_url`` without the query, ``$request_method``, ``$request_path``, ``$ip``,
``$user_agent``, ``$request_route``) and ``extra_properties(request)``. Inside OpenTelemetry's Flask
instrumentation the request's server span gets the person and session.

An exception that reaches Flask's unhandled-exception machinery (``got_request_exception``) is
sent to error tracking on the request's person, by ``client`` if given; ``capture_exceptions=None``
(the default) follows exception autocapture, as PostHog's does. ``request_filter(request)``
returning false leaves a request alone.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, Mapping, Optional

from .._exceptions.autocapture import exception_autocapture_enabled
from .._exceptions.capture import capture_escaping, escaping
from . import _request

_EXTENSION_KEY = "posthog"
_STATE = "_posthog_otel_context"
_SOURCE = "flask.got_request_exception"


class PosthogFlaskIntegration:
    """A context per Flask request (see the module doc)."""

    def __init__(
        self,
        app: Any = None,
        *,
        client: Any = None,
        capture_exceptions: Optional[bool] = None,
        request_filter: Optional[Callable[[Any], bool]] = None,
        extra_properties: Optional[Callable[[Any], Mapping[str, Any]]] = None,
        capture_tracing_headers: Optional[bool] = None,
        trust_tracing_headers: Optional[bool] = None,
        distinct_id: Optional[Callable[[Any], Any]] = None,
    ) -> None:
        self.client = client
        self.capture_exceptions = capture_exceptions
        self.request_filter = request_filter
        self.extra_properties = extra_properties
        self.distinct_id = distinct_id
        if trust_tracing_headers is not None:
            warnings.warn("trust_tracing_headers is deprecated; use capture_tracing_headers instead.",
                          DeprecationWarning, stacklevel=2)  # fmt: skip
        chosen = capture_tracing_headers if capture_tracing_headers is not None else trust_tracing_headers
        self.capture_tracing_headers = True if chosen is None else (chosen if isinstance(chosen, bool) else False)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        """Register with a Flask application (the application-factory pattern); once per app."""
        from flask import got_request_exception

        if _EXTENSION_KEY in app.extensions:
            raise RuntimeError("PostHog is already initialized for this Flask app")
        app.extensions[_EXTENSION_KEY] = self
        app.before_request(self._before_request)
        app.teardown_request(self._teardown_request)
        got_request_exception.connect(self._unhandled, app, weak=False)

    def _before_request(self) -> None:
        from flask import g, request

        if (
            self.request_filter is not None
            and _request.call_back("request_filter", self.request_filter, request) is False
        ):
            return
        person = _request.call_back("distinct_id", self.distinct_id, request)
        tags = {
            **_tags(request),
            **_request.extra_tags(_request.call_back("extra_properties", self.extra_properties, request)),
        }
        setattr(g, _STATE, _request.begin(person, lambda name: _request.clean(request.headers.get(name)), tags,
                                          self.capture_tracing_headers, fresh=True))  # fmt: skip

    def _teardown_request(self, exception: Optional[BaseException]) -> None:
        from flask import g

        opened = getattr(g, _STATE, None)
        if opened is not None:
            setattr(g, _STATE, None)
            _request.end(opened)

    def _unhandled(self, sender: Any, exception: BaseException, **extra: Any) -> None:
        from flask import g, has_request_context

        if not (has_request_context() and getattr(g, _STATE, None) is not None):
            return
        capture = self.capture_exceptions if self.capture_exceptions is not None else exception_autocapture_enabled()
        if capture:
            capture_escaping(exception, escaping(_SOURCE), getattr(self.client, "_emitter", None))


def _tags(request: Any) -> Dict[str, Any]:
    tags: Dict[str, Any] = dict(_request.request_tags(
        request.method, request.scheme, request.host, request.path, request.headers.get("User-Agent")))  # fmt: skip
    address = _request.clean(request.remote_addr)
    if address:
        tags["$ip"] = address
    rule = getattr(request, "url_rule", None)
    if rule is not None:
        tags["$request_route"] = str(rule)
    return tags
