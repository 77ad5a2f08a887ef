"""``capture_exception``: an exception for PostHog error tracking, as one ``posthog.exception`` record.

PostHog's SDK's signature and semantics: the exception (or the one being handled), the
person (argument, else the context's, else personless), the context's session and tags,
the caller's properties over the SDK's, ``$trace_id``/``$span_id`` of the span it is
captured in, the uuid returned; an exception already captured is not sent twice. The
record travels the road every operation travels (OTel's batch processor, the exporter's
retries and spool); the exporter adds what needs no caller (person-less ids, groups,
library and system properties).
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from opentelemetry import trace

from .. import _emitter, _personless
from .. import _schema as schema
from .._context import current_scope, get_tags
from .._guard import Dropped, guarded
from .._log import logger
from .._operation import Timestamp, _add_groups, _finish, _resolve
from .._properties import sanitize_properties
from .._text import describe
from . import limits
from .frames import Stack, current_stack, exception_list, location, type_name

#: Keys of the caller's properties that keep their maps (PostHog's meaning), as capture()'s.
_NESTED = frozenset({"$set", "$set_once", "$feature_flag_payload", "$exception_list"})
#: PostHog's ``log_captured_exceptions``: each captured exception is also logged (a one-item list: settable).
LOG_CAPTURED = [False]
#: Set on an exception once it is sent: the same object is not captured again.
CAPTURED = "__posthog_otel_captured"
#: PostHog's levels, and the names that map to them.
_LEVELS = {"fatal": "fatal", "critical": "fatal", "error": "error", "warning": "warning", "warn": "warning",
           "log": "log", "info": "info", "debug": "debug"}  # fmt: skip


class How(NamedTuple):
    """How an exception reached us, as PostHog's integrations describe it."""

    level: str = "error"
    source: Optional[str] = None  # ``$exception_source``: "wsgi.middleware", "python.sys_excepthook"...
    mechanism: Optional[Dict[str, Any]] = None  # merged into the first entry's mechanism


#: An exception escaping a request or a task, unhandled: what PostHog's middleware says.
def escaping(source: str, mechanism_type: str = "middleware", level: str = "error") -> How:
    return How(level, source, {"type": mechanism_type, "handled": False})


@guarded("exception capture")
def capture_escaping(exception: Any, how: How, target: Any = None) -> Optional[str]:
    """For the integrations and autocapture: an exception the application did not handle
    (sent by ``target``, a client's emitter, or else the module's)."""
    return capture(exception, None, None, None, None, None, None, None, how, target)


def capture(
    exception: Any, distinct_id: Any, properties: Any, timestamp: Timestamp, uuid: Any, groups: Any,
    disable_geoip: Optional[bool], flags: Any, how: How, target: Any = None,
) -> Optional[str]:  # fmt: skip
    """One exception to one emitter (``target``: a client's; None: the module's, as routed)."""
    exc_type, value, tb, stack = _exc_info(exception)
    if _already_captured(value):
        logger.debug("posthog_otel: capture_exception(): this %s was captured already", type(value).__name__)
        return None
    name = type_name(exc_type)
    where = location(tb, stack)
    if not limits.calls.allow((name, where)):
        raise Dropped(
            "exception_rate_limited", "%s raised at %s more than %d times in a burst: it is counted, not sent "
            "(%d more are sent every %d s)", name, where or "an unknown place", limits.BURST, limits.REFILL,
            limits.REFILL_SECONDS,
        )  # fmt: skip
    if flags is not None:
        from .._flags.snapshot import attach_flags

        properties = attach_flags(flags, properties)
    scope = current_scope()
    attributes: Dict[str, Any] = {}
    person = _resolve(distinct_id, scope)
    if person is not None:
        attributes[schema.DISTINCT_ID] = person
    else:
        _personless.note("capture_exception", scope)
    if groups is not None:
        _add_groups(attributes, groups)
    mechanism = dict(how.mechanism) if how.mechanism else None
    body = _body(exception_list(exc_type, value, tb, mechanism, stack), how, properties, scope)
    emitter = target if target is not None else _emitter.module_target()
    sent = _finish(
        emitter, schema.EXCEPTION, "capture_exception", attributes, body, scope, timestamp, uuid, disable_geoip
    )
    if sent is not None:
        _mark(value)
        if LOG_CAPTURED[0]:
            logger.error("posthog_otel: captured %s", name, exc_info=(exc_type, value, tb) if tb is not None else None)
    return sent


def _exc_info(exception: Any) -> Tuple[Any, BaseException, Optional[TracebackType], Optional[Stack]]:
    """(type, value, traceback, stack): ``stack`` stands for the traceback of an exception never raised."""
    if exception is None:
        exc_type, value, tb = sys.exc_info()
        if value is None:
            raise Dropped("no_exception", "no exception was given and none is being handled")
        return exc_type, value, tb, None
    if isinstance(exception, BaseException):
        tb = exception.__traceback__
        return type(exception), exception, tb, None if tb is not None else current_stack()
    if isinstance(exception, tuple) and len(exception) == 3 and isinstance(exception[1], BaseException):
        exc_type, value, tb = exception
        return (exc_type if isinstance(exc_type, type) else type(value)), value, _tb(tb), None
    raise Dropped("invalid_exception", "takes an exception or a sys.exc_info() tuple, not %s", describe(exception))


def _tb(tb: Any) -> Optional[TracebackType]:
    return tb if isinstance(tb, TracebackType) else None


def _body(exceptions: List[Dict[str, Any]], how: How, properties: Any, scope: Any) -> Dict[str, Any]:
    """As PostHog's SDK merges them: the context's tags, under the exception's own keys, under
    the caller's properties (which may override even those, as there: deprecated, not refused)."""
    tags = get_tags() if scope is not None else None
    what = "capture_exception() properties"
    body = sanitize_properties(tags, what=what, keep_nested=_NESTED) if tags else {}
    body["$exception_list"] = exceptions
    body["$exception_level"] = _LEVELS.get(how.level.lower(), "error") if isinstance(how.level, str) else "error"
    if how.source:
        body["$exception_source"] = how.source
    if properties is not None:
        body.update(sanitize_properties(properties, what=what, keep_nested=_NESTED))
    if tags is not None:
        body["$context_tags"] = list(tags)
    return body


def _already_captured(value: BaseException) -> bool:
    try:
        return bool(value.__dict__.get(CAPTURED))
    except Exception:  # no __dict__, or a strange one
        return False


def _mark(value: BaseException) -> None:
    """Mark the exception sent, and remember it in its trace: OTel's own record of it
    (``record_exception`` on the spans it escapes) then adds no second event."""
    try:
        setattr(value, CAPTURED, True)
    except Exception:  # an exception type that refuses attributes: it may be sent again
        pass
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        limits.recent.first(duplicate_key(context.trace_id, type(value).__name__, value))


def duplicate_key(trace_id: int, type_name: str, message: Any) -> Tuple[int, str, str]:
    """(trace, the type's own name, the message): how an exception is recognised in OTel's records,
    whose ``exception.type`` may or may not carry the module."""
    if not isinstance(message, str):
        try:
            message = str(message)
        except Exception:
            message = ""
    return trace_id, type_name.rpartition(".")[2], message
