"""A context per WSGI request (Flask, Django, any WSGI app)::

    from posthog_otel.integrations.wsgi import PostHogWSGIMiddleware

    app.wsgi_app = PostHogWSGIMiddleware(app.wsgi_app)            # Flask
    application = PostHogWSGIMiddleware(get_wsgi_application())   # Django's wsgi.py

Inside OpenTelemetry's own WSGI middleware (``OpenTelemetryMiddleware(PostHogWSGIMiddleware(app))``)
the request's person and session also land on its server span as ``user.id`` / ``session.id``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Optional

from .. import _context
from . import _request


class PostHogWSGIMiddleware:
    """Open a context for each request around a WSGI application.

    ``distinct_id(environ)`` may name the person (the logged-in user); otherwise the
    ``X-POSTHOG-DISTINCT-ID`` / ``X-POSTHOG-SESSION-ID`` headers of PostHog's browser SDK
    do, unless ``tracing_headers=False``.  ``tags(environ)`` may add tags to the request's
    (``$current_url`` without the query, ``$request_method``, ``$request_path``,
    ``$user_agent``).  The context stays open until the response's ``close()``, so a
    streamed body is produced inside it.  An exception that escapes the application (or its
    streamed body) is sent to PostHog error tracking on the request's person, then goes on
    as before (``capture_exceptions=False``: not sent).  Nothing here raises into the application.
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        distinct_id: Optional[_request.PersonCallback] = None,
        tags: Optional[_request.TagsCallback] = None,
        tracing_headers: bool = True,
        capture_exceptions: bool = True,
    ) -> None:
        self.app = app
        self.distinct_id = distinct_id
        self.tags = tags
        self.tracing_headers = tracing_headers
        self.capture_exceptions = capture_exceptions

    def __call__(self, environ: Any, start_response: Callable[..., Any]) -> Iterable[bytes]:
        opened = _request.begin(
            _request.call_back("distinct_id", self.distinct_id, environ),
            lambda name: _header(environ, name),
            {**_tags(environ), **_request.extra_tags(_request.call_back("tags", self.tags, environ))},
            self.tracing_headers,
        )
        try:
            body = self.app(environ, start_response)
        except BaseException as error:
            if self.capture_exceptions and isinstance(error, Exception):
                _request.capture_escaping(error, _SOURCE)
            _request.end(opened)
            raise
        return _ClosingBody(body, opened, self.capture_exceptions)


_SOURCE = "wsgi.middleware"


class _ClosingBody:
    """The application's response, which closes the request's context when the server closes it."""

    def __init__(self, body: Iterable[bytes], opened: Optional[_context.Opened], capture: bool = True) -> None:
        self.body = body
        self.opened = opened
        self.capture = capture

    def __iter__(self) -> Iterator[bytes]:
        if not self.capture:
            return iter(self.body)
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        """The body's chunks; an exception while producing them is the request's too."""
        try:
            yield from self.body
        except Exception as error:
            _request.capture_escaping(error, _SOURCE)
            raise

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            opened, self.opened = self.opened, None
            _request.end(opened)


def _header(environ: Any, name: str) -> Optional[str]:
    return _request.clean(_text(environ.get("HTTP_" + name.upper().replace("-", "_"))))


def _text(value: Any) -> Any:
    """WSGI hands request bytes over as latin-1 text (PEP 3333): read UTF-8 where it is."""
    if isinstance(value, str) and not value.isascii():
        try:
            return value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return value


def _tags(environ: Any) -> Any:
    return _request.request_tags(
        environ.get("REQUEST_METHOD"),
        environ.get("wsgi.url_scheme"),
        environ.get("HTTP_HOST") or _server(environ),
        _text((environ.get("SCRIPT_NAME") or "") + (environ.get("PATH_INFO") or "")),
        _text(environ.get("HTTP_USER_AGENT")),
    )


def _server(environ: Any) -> Optional[str]:
    name, port = environ.get("SERVER_NAME"), environ.get("SERVER_PORT")
    if not isinstance(name, str) or not name:
        return None
    default = {"http": "80", "https": "443"}.get(environ.get("wsgi.url_scheme"))
    return name if port in (None, default) else "%s:%s" % (name, port)
