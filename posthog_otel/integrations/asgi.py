"""A context per ASGI request or WebSocket (FastAPI, Starlette, Django's ASGI, any ASGI app)::

    from posthog_otel.integrations.asgi import PostHogASGIMiddleware

    app.add_middleware(PostHogASGIMiddleware)   # FastAPI / Starlette
    app = PostHogASGIMiddleware(app)            # any ASGI app

Inside OpenTelemetry's ASGI middleware the request's person and session also land on its
server span as ``user.id`` / ``session.id``.  Lifespan and other scope types pass through.
"""

from __future__ import annotations

import inspect
from typing import Any, Awaitable, Callable, Dict, Optional

from . import _request

ASGIApp = Callable[[Dict[str, Any], Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Awaitable[None]]


class PostHogASGIMiddleware:
    """Open a context for each HTTP request and WebSocket around an ASGI application.

    As ``PostHogWSGIMiddleware``, with the ASGI scope in place of the environ (an exception
    escaping the application is sent on the request's person); the callbacks may be ``async``.  The context is that of the request's task, so tasks
    the application creates inside it inherit it.
    """

    def __init__(
        self,
        app: ASGIApp,
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

    async def __call__(self, scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        person = await _answer("distinct_id", _request.call_back("distinct_id", self.distinct_id, scope))
        extra = _request.extra_tags(await _answer("tags", _request.call_back("tags", self.tags, scope)))
        opened = _request.begin(person, headers.get, {**_tags(scope, headers), **extra}, self.tracing_headers)
        try:
            await self.app(scope, receive, send)
        except Exception as error:
            if self.capture_exceptions:
                _request.capture_escaping(error, "asgi.middleware")
            raise
        finally:
            _request.end(opened)


async def _answer(what: str, value: Any) -> Any:
    """A callback's answer, awaited if it is awaitable; None (said) if awaiting raised."""
    if not inspect.isawaitable(value):
        return value
    try:
        return await value
    except Exception as error:
        return _request.callback_failed(what, error)


def _headers(scope: Dict[str, Any]) -> Dict[str, Optional[str]]:
    """Lower-case name -> cleaned value; the first usable value of a repeated header wins."""
    found: Dict[str, Optional[str]] = {}
    raw = scope.get("headers")
    if not isinstance(raw, (list, tuple)):
        return found
    for item in raw:
        if not (isinstance(item, (list, tuple)) and len(item) == 2):
            continue
        name, value = item
        if not (isinstance(name, bytes) and isinstance(value, bytes)):
            continue
        key = name.decode("latin-1").lower()
        if found.get(key) is None:
            found[key] = _request.clean(_decode(value))
    return found


def _decode(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _tags(scope: Dict[str, Any], headers: Dict[str, Optional[str]]) -> Dict[str, str]:
    return _request.request_tags(
        scope.get("method"),
        scope.get("scheme"),
        headers.get("host") or _server(scope),
        scope.get("path"),
        headers.get("user-agent"),
    )


def _server(scope: Dict[str, Any]) -> Optional[str]:
    server = scope.get("server")
    if not (isinstance(server, (list, tuple)) and len(server) == 2 and isinstance(server[0], str)):
        return None
    host, port = server
    default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(str(scope.get("scheme")))
    return host if port in (None, default) else "%s:%s" % (host, port)
