"""Celery: the person, session and tags of the context that sends a task are there when it runs::

    from posthog_otel.integrations.celery import instrument_celery

    instrument_celery()   # once, in the processes that send tasks and in the workers

The sending side writes them into the task's headers (``X-POSTHOG-DISTINCT-ID``,
``X-POSTHOG-SESSION-ID``, ``X-POSTHOG-CONTEXT-TAGS``: the names PostHog's own Celery
integration uses, so tasks sent by either run under the other); the worker opens a
fresh context around each task from them.  Task headers come from the application's
own producers, so they are trusted, unlike a web request's.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from celery import signals

from .. import _context
from .._exceptions.capture import capture_escaping, escaping
from .._guard import guarded
from .._log import count_drop, warn_limited
from .._properties import sanitize_properties
from .._text import describe

DISTINCT_ID_HEADER = "X-POSTHOG-DISTINCT-ID"
SESSION_ID_HEADER = "X-POSTHOG-SESSION-ID"
TAGS_HEADER = "X-POSTHOG-CONTEXT-TAGS"

#: Where a running task's context waits for ``task_postrun`` (an attribute of its request).
_OPENED = "_posthog_otel_context"
_UID = "posthog_otel."


def instrument_celery(capture_exceptions: bool = True) -> None:
    """Connect to Celery's signals (again: a no-op). A task that fails sends its exception to
    PostHog error tracking on the task's person, as PostHog's Celery integration does
    (``capture_exceptions=False``: not sent)."""
    signals.before_task_publish.connect(_on_publish, weak=False, dispatch_uid=_UID + "publish")
    signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid=_UID + "prerun")
    signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid=_UID + "postrun")
    if capture_exceptions:
        signals.task_failure.connect(_on_failure, weak=False, dispatch_uid=_UID + "failure")
    else:
        signals.task_failure.disconnect(dispatch_uid=_UID + "failure")


def uninstrument_celery() -> None:
    signals.before_task_publish.disconnect(dispatch_uid=_UID + "publish")
    signals.task_prerun.disconnect(dispatch_uid=_UID + "prerun")
    signals.task_postrun.disconnect(dispatch_uid=_UID + "postrun")
    signals.task_failure.disconnect(dispatch_uid=_UID + "failure")


@guarded("celery task publish")
def _on_publish(headers: Any = None, **_: Any) -> None:
    if not isinstance(headers, dict):
        return
    ours: Dict[str, str] = {}
    person, session = _context.get_context_distinct_id(), _context.get_context_session_id()
    if person:
        ours[DISTINCT_ID_HEADER] = person
    if session:
        ours[SESSION_ID_HEADER] = session
    tags = _context.get_tags()
    if tags:  # converted here, by the property rules the task's operations would apply anyway
        ours[TAGS_HEADER] = json.dumps(sanitize_properties(tags, what="tags sent with a Celery task"))
    if ours:
        headers.update(ours)
        # Celery's protocol 2 hands the worker only the headers nested here (celery#4875).
        nested = headers.setdefault("headers", {})
        if isinstance(nested, dict):
            nested.update(ours)


@guarded("celery task start")
def _on_prerun(sender: Any = None, **_: Any) -> None:
    request = getattr(sender, "request", None)
    if request is None:
        return
    headers = _headers(request)
    opened = _context.enter_scope(fresh=True)  # nothing from the worker's previous task
    setattr(request, _OPENED, opened)
    if headers.get(DISTINCT_ID_HEADER):
        _context.identify_context(headers[DISTINCT_ID_HEADER])
    if headers.get(SESSION_ID_HEADER):
        _context.set_context_session(headers[SESSION_ID_HEADER])
    for key, value in _tags(headers.get(TAGS_HEADER)).items():
        _context.tag(key, value)


@guarded("celery task end")
def _on_postrun(sender: Any = None, **_: Any) -> None:
    request = getattr(sender, "request", None)
    opened: Optional[_context.Opened] = getattr(request, _OPENED, None)
    if opened is not None:
        setattr(request, _OPENED, None)
        _context.exit_scope(opened)


def _on_failure(exception: Any = None, **_: Any) -> None:
    """Still inside the task's context (``task_postrun`` closes it): the task's person and tags."""
    if isinstance(exception, BaseException):
        capture_escaping(exception, _FAILED)


_FAILED = escaping("celery.task_failure", "task")


def _headers(request: Any) -> Dict[str, Any]:
    headers = getattr(request, "headers", None)
    found = dict(headers) if isinstance(headers, dict) else {}
    for name in (DISTINCT_ID_HEADER, SESSION_ID_HEADER, TAGS_HEADER):  # a flat message puts them here
        value = getattr(request, name, None)
        if name not in found and value is not None:
            found[name] = value
    return found


def _tags(raw: Any) -> Dict[str, Any]:
    if raw is None:
        return {}
    try:
        tags = json.loads(raw)
    except (TypeError, ValueError):
        tags = None
    if isinstance(tags, dict):
        return tags
    count_drop("invalid_property")
    warn_limited(
        "celery:tags",
        "posthog_otel: a Celery task's %s header is not a JSON map: %s; ignored",
        TAGS_HEADER,
        describe(raw),
    )
    return {}
