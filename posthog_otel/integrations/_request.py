"""What a web request's context holds, whichever protocol brought it (WSGI, ASGI).

The person comes from, in order: the application's callback (the logged-in user), the
``X-POSTHOG-DISTINCT-ID`` header that PostHog's browser SDK sends with its tracing
headers, and, with ``propagate_identity``, the incoming baggage (read by the operations
themselves).  Headers are client-controlled: analytics context, never authentication.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Mapping, Optional

from opentelemetry import trace

from .. import _context, _personless, _stamping
from .._exceptions.capture import capture_escaping as _capture
from .._exceptions.capture import escaping
from .._guard import guarded
from .._log import warn_limited
from .._text import describe

DISTINCT_ID_HEADER = "x-posthog-distinct-id"
SESSION_ID_HEADER = "x-posthog-session-id"

#: As PostHog's SDK reads tracing headers: control characters out, at most 1,000 characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_HEADER = 1000
MAX_PATH = 2048

#: A callable of the request (the WSGI environ, the ASGI scope) returning a distinct id or None.
PersonCallback = Callable[[Any], Any]
#: A callable of the request returning more tags (a map) or None.
TagsCallback = Callable[[Any], Optional[Mapping[str, Any]]]


def clean(value: Any, limit: int = MAX_HEADER) -> Optional[str]:
    """A header value as PostHog's SDK keeps it, or None when nothing usable is left."""
    if not isinstance(value, str):
        return None
    return _CONTROL.sub("", value).strip()[:limit] or None


def request_tags(method: Any, scheme: Any, host: Any, path: Any, user_agent: Any) -> Dict[str, str]:
    """The tags PostHog's SDK gives a request; the URL without its query (secrets live there)."""
    tags: Dict[str, str] = {}
    method, path = clean(method, 32), clean(path, MAX_PATH)
    if method:
        tags["$request_method"] = method
    if path:
        tags["$request_path"] = path
    agent = clean(user_agent)
    if agent:
        tags["$user_agent"] = tags["$raw_user_agent"] = agent
    scheme, host = clean(scheme, 16), clean(host)
    if scheme and host and path:
        tags["$current_url"] = "%s://%s%s" % (scheme, host, path)
    return tags


@guarded("request context")
def begin(
    person: Any,
    header: Callable[[str], Optional[str]],
    tags: Mapping[str, Any],
    tracing_headers: bool,
    fresh: bool = False,
) -> Optional[_context.Opened]:
    """Open the request's context (None if that failed: said, counted, the request goes on).

    ``person`` is the callback's answer (None: none); ``header(name)`` reads a cleaned
    request header, lower-case name; ``fresh`` opens it without the enclosing context's
    person, session and tags (PostHog's Flask integration does).
    """
    opened = _context.enter_scope(fresh)
    try:
        session = None
        if tracing_headers:
            person = person if person is not None else header(DISTINCT_ID_HEADER)
            session = header(SESSION_ID_HEADER)
        if person is not None:
            _context.identify_context(person)
        if session is not None:
            _context.set_context_session(session)
        for key, value in tags.items():
            _context.tag(key, value)
        mark_span()
        _personless.note_request()
    except BaseException:
        _context.exit_scope(opened)
        raise
    return opened


@guarded("request context")
def end(opened: Optional[_context.Opened]) -> None:
    if opened is not None:
        _context.exit_scope(opened)


def capture_escaping(error: BaseException, source: str) -> None:
    """An exception escaping the request, to PostHog error tracking on the request's person, as
    PostHog's own middleware sends it (unhandled, level error); inside the request's span, so
    OTel's record of it on that span is not sent a second time (``capture_exceptions``)."""
    _capture(error, escaping(source))


def mark_span() -> None:
    """``user.id`` / ``session.id`` on the current (server) span, so traces and persons line up;
    with ``context_attributes`` on, every name its span processor writes (the server span started
    before the request's context opened, so that processor did not see it)."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    if _stamping.installed(trace.get_tracer_provider()):
        _stamping.enrich_current_span(span)
        return
    person, session = _context.get_context_distinct_id(), _context.get_context_session_id()
    if person:
        span.set_attribute("user.id", person)
    if session:
        span.set_attribute("session.id", session)


def call_back(what: str, callback: Optional[Callable[[Any], Any]], request: Any) -> Any:
    """The application's callback's answer; None (said) when it raised: the request goes on."""
    if callback is None:
        return None
    try:
        return callback(request)
    except Exception as error:
        return callback_failed(what, error)


def callback_failed(what: str, error: Exception) -> None:
    warn_limited(
        "request:callback:" + what,
        "posthog_otel: the %s callback raised %s (%s); the request's context goes without it",
        what,
        type(error).__name__,
        describe(error),
    )


def extra_tags(answer: Any) -> Mapping[str, Any]:
    """A tags callback's answer as a map; anything else is said and ignored."""
    if answer is None:
        return {}
    if isinstance(answer, Mapping):
        return answer
    warn_limited(
        "request:callback:tags",
        "posthog_otel: the tags callback returned %s, not a map; ignored",
        describe(answer),
    )
    return {}
