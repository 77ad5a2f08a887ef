"""PostHog's ``PosthogContextMiddleware`` for Django, by the same name and settings::

    MIDDLEWARE = [
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "posthog_otel.integrations.django.PosthogContextMiddleware",   # after authentication
    ]

Each request runs in a context (the same core as ``PostHogWSGIMiddleware`` / ``PostHogASGIMiddleware``):
the person is the authenticated user's primary key, else the ``X-POSTHOG-DISTINCT-ID`` header of
PostHog's browser SDK; the session is ``X-POSTHOG-SESSION-ID``; the tags are PostHog's (``email``
of the authenticated user, ``$current_url`` without its query, ``$request_method``, ``$request_path``,
``$ip`` from ``X-Forwarded-For``, ``$user_agent``). Inside OpenTelemetry's Django instrumentation
the request's server span gets the person and session. Sync and async (ASGI) alike.

PostHog's settings, read once at start-up:

- ``POSTHOG_MW_CLIENT``: a ``posthog_otel.Posthog`` that sends the exceptions (else the module's pipeline);
- ``POSTHOG_MW_CAPTURE_EXCEPTIONS``: ``True`` (the default) sends an exception a view raises to error
  tracking on the request's person; ``False`` does not; ``None`` follows exception autocapture;
- ``POSTHOG_MW_REQUEST_FILTER``: ``f(request)``; false leaves the request alone (no context, no capture);
- ``POSTHOG_MW_EXTRA_PROPERTIES`` (old name ``POSTHOG_MW_EXTRA_TAGS``): ``f(request)`` returning more tags;
- ``POSTHOG_MW_PROPERTIES_MAP`` (old name ``POSTHOG_MW_TAG_MAP``): ``f(tags)`` returning the tags to use;
- ``POSTHOG_MW_CAPTURE_TRACING_HEADERS`` (deprecated name ``POSTHOG_MW_TRUST_TRACING_HEADERS``): read the
  ``X-POSTHOG-*`` headers (default ``True``). They are analytics context, never authentication.

Where it differs from PostHog's, on purpose: the authenticated user wins over the
``X-POSTHOG-DISTINCT-ID`` header (a client cannot put a logged-in user's events on someone else),
and ``$current_url`` leaves out the query string (tokens live there), as the WSGI middleware does.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, Optional, Tuple, cast

from .._exceptions.autocapture import exception_autocapture_enabled
from .._exceptions.capture import capture_escaping, escaping
from . import _request

_SOURCE = "django.middleware"


class PosthogContextMiddleware:
    """A context per Django request (see the module doc for the settings)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction  # Django's own dependency
        from django.conf import settings

        self.get_response = get_response
        # asgiref's test: Django hands async middleware a sync_to_async object, which inspect's misses
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
        self.client = getattr(settings, "POSTHOG_MW_CLIENT", None)
        capture = getattr(settings, "POSTHOG_MW_CAPTURE_EXCEPTIONS", True)
        self.capture_exceptions: Optional[bool] = capture if capture is None or isinstance(capture, bool) else True
        self.capture_tracing_headers = _tracing_headers(settings)
        self.request_filter = _callable(settings, "POSTHOG_MW_REQUEST_FILTER")
        self.extra_properties = _callable(settings, "POSTHOG_MW_EXTRA_PROPERTIES", "POSTHOG_MW_EXTRA_TAGS")
        self.properties_map = _callable(settings, "POSTHOG_MW_PROPERTIES_MAP", "POSTHOG_MW_TAG_MAP")

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self.__acall__(request)
        if not self._tracked(request):
            return self.get_response(request)
        opened = self._begin(request, _user(getattr(request, "user", None)))
        try:
            return self.get_response(request)
        finally:
            _request.end(opened)

    async def __acall__(self, request: Any) -> Any:
        if not self._tracked(request):
            return await self.get_response(request)
        opened = self._begin(request, await _async_user(request))
        try:
            return await self.get_response(request)
        finally:
            _request.end(opened)

    def process_exception(self, request: Any, exception: Exception) -> None:
        """Django turns a view's exception into a response before it reaches ``__call__``: it is
        sent from here, inside the request's context, as PostHog's middleware sends it."""
        capture = self.capture_exceptions if self.capture_exceptions is not None else exception_autocapture_enabled()
        if capture and self._tracked(request):
            capture_escaping(exception, escaping(_SOURCE), getattr(self.client, "_emitter", None))

    # --- the request's context -----------------------------------------------------------------

    def _tracked(self, request: Any) -> bool:
        if self.request_filter is None:
            return True
        return bool(_request.call_back("request_filter", self.request_filter, request) is not False)

    def _begin(self, request: Any, user: Tuple[Optional[str], Optional[str]]) -> Any:
        person, email = user
        return _request.begin(person, lambda name: _header(request, name), self._tags(request, email),
                              self.capture_tracing_headers)  # fmt: skip

    def _tags(self, request: Any, email: Optional[str]) -> Dict[str, Any]:
        headers = getattr(request, "headers", {})
        tags: Dict[str, Any] = dict(_request.request_tags(
            request.method, request.scheme, _host(request), request.path, headers.get("User-Agent")))  # fmt: skip
        if email:
            tags["email"] = email
        forwarded = _request.clean(headers.get("X-Forwarded-For"))
        if forwarded:
            tags["$ip"] = forwarded
        tags.update(_request.extra_tags(_request.call_back("extra_properties", self.extra_properties, request)))
        if self.properties_map is not None:
            mapped = _request.call_back("properties_map", self.properties_map, tags)
            if mapped is not None:  # None: it raised (said); the tags stay as they were
                tags = dict(_request.extra_tags(mapped))
        return tags


def _header(request: Any, name: str) -> Optional[str]:
    try:
        return _request.clean(request.headers.get(name))
    except Exception:
        return None


def _host(request: Any) -> Optional[str]:
    try:
        # Django's HttpRequest.get_host() -> str (Django ships no annotations); it checks
        # ALLOWED_HOSTS: a host it refuses is no URL of ours.
        return cast(str, request.get_host())
    except Exception:
        return None


def _user(user: Any) -> Tuple[Optional[str], Optional[str]]:
    """(primary key as text, email) of an authenticated user, else (None, None); PostHog's rule."""
    if user is None:
        return None, None
    try:
        authenticated = getattr(user, "is_authenticated", False)
        if callable(authenticated):  # Django before 1.10
            authenticated = authenticated()
        if not authenticated:
            return None, None
        pk = getattr(user, "pk", None)
        email = getattr(user, "email", None)
        return (None if pk is None else str(pk)), (str(email) if email else None)
    except Exception as error:
        _request.callback_failed("request.user", error)
        return None, None


async def _async_user(request: Any) -> Tuple[Optional[str], Optional[str]]:
    """``await request.auser()`` in async views (``request.user`` would query the database on the loop)."""
    auser = getattr(request, "auser", None)
    if not callable(auser):
        return _user(getattr(request, "user", None))
    try:
        return _user(await auser())
    except Exception as error:
        _request.callback_failed("request.auser()", error)
        return None, None


def _tracing_headers(settings: Any) -> bool:
    capture = getattr(settings, "POSTHOG_MW_CAPTURE_TRACING_HEADERS", None)
    trust = getattr(settings, "POSTHOG_MW_TRUST_TRACING_HEADERS", None)
    if trust is not None:
        warnings.warn("POSTHOG_MW_TRUST_TRACING_HEADERS is deprecated; use POSTHOG_MW_CAPTURE_TRACING_HEADERS instead.",
                      DeprecationWarning, stacklevel=3)  # fmt: skip
    chosen = capture if capture is not None else trust
    if chosen is None:
        return True
    return chosen if isinstance(chosen, bool) else False


def _callable(settings: Any, name: str, old_name: Optional[str] = None) -> Optional[Callable[..., Any]]:
    value = getattr(settings, name) if hasattr(settings, name) else getattr(settings, old_name or name, None)
    return value if callable(value) else None
