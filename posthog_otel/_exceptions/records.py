"""OpenTelemetry's own exception records as ``posthog.exception`` operations (no code change).

With the exporter's ``capture_exceptions`` on, these become ``$exception`` events:

- span events named ``exception`` (``span.record_exception()``, which every instrumentation
  and ``start_as_current_span`` call on an exception that escapes a span), read by
  ``PostHogSpanExporter``;
- log records carrying ``exception.type`` or ``exception.message`` (``logger.exception()``
  through OTel's ``LoggingHandler``, ``Logger.emit(exception=...)``, any language's SDK),
  read by ``PostHogLogExporter`` and the gateway.

The person is the record's (``posthog.distinct_id``, ``user.id``, ``enduser.id``; for a span
event, then a span's of its trace, where the middleware puts ``user.id``; for a log record
emitted in this process through ``configure()``, then the context it was emitted in), then
the resource's; else the event is
personless. Never invented. The stack is ``exception.stacktrace`` read back into frames
(``stacktrace``); text in no known format is sent whole as ``exception.stacktrace``.
Runs on the exporter's thread (the gateway's request thread); every record skipped is counted.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Optional

from .. import _context
from .. import _schema as schema
from .._log import count_drop, warn_limited
from .._mapping import Operation
from .._properties import sanitize_properties
from . import limits
from .capture import duplicate_key
from .frames import sendable_text

_PERSON_KEYS = (schema.DISTINCT_ID, *schema.DISTINCT_ID_FALLBACKS)
_SESSION_KEYS = (schema.SESSION_ID, *schema.SESSION_ID_FALLBACKS)
_ROUTING = frozenset((*schema.DISTINCT_ID_FALLBACKS, *schema.SESSION_ID_FALLBACKS))
#: Log severities (OTel's SeverityNumber) to PostHog's exception levels.
_LEVELS = ((21, "fatal"), (17, "error"), (13, "warning"), (9, "info"), (1, "debug"))
_NAMES = (("FATAL", "fatal"), ("ERROR", "error"), ("WARN", "warning"), ("INFO", "info"), ("DEBUG", "debug"),
          ("TRACE", "debug"))  # fmt: skip


def has_exception(attributes: Any) -> bool:
    """Cheap test on a record's attributes (a map, or None): does it describe an exception?"""
    return bool(attributes) and (schema.EXCEPTION_TYPE in attributes or schema.EXCEPTION_MESSAGE in attributes)


def with_context_identity(emitted: Any) -> Any:
    """An exception log record with the person, session and tags of the context it was emitted
    in (a person and session only where the record names none). Called on the caller's thread
    (``PostHogLogRecordProcessor.on_emit``) because OTel's batch processor drops a record's
    context before the exporter sees it. The application's record is left as it is; a copy
    goes to PostHog's queue."""
    record = emitted.log_record
    scope = _context.scope_of(getattr(record, "context", None))
    if scope is None:
        return emitted
    attributes = record.attributes or {}
    extra: Dict[str, Any] = {}
    for keys, found in ((_PERSON_KEYS, _context.distinct_id_of(scope)), (_SESSION_KEYS, _context.session_of(scope))):
        if isinstance(found, str) and found and not any(attributes.get(key) for key in keys):
            extra[keys[0]] = found
    tags = _context.tags_of(scope)
    for key, value in sanitize_properties(tags, what="tags of an exception log record").items() if tags else ():
        if key not in attributes:
            extra[key] = value
    extra["$context_tags"] = list(tags)
    try:
        inner = copy.copy(record)
        inner.attributes = {**attributes, **extra}
        outer = copy.copy(emitted)
        outer.log_record = inner
    except Exception:  # an SDK whose records cannot be copied so: the record goes without them
        return emitted
    return outer


def from_log_record(readable: Any) -> Optional[Operation]:
    """A ``ReadableLogRecord`` with ``exception.*`` attributes, in this process."""
    record = readable.log_record
    if not has_exception(record.attributes):
        return None
    resource = getattr(readable, "resource", None)
    scope = _context.scope_of(
        getattr(record, "context", None)
    )  # only a processor that keeps it (not the SDK's batch one)
    return _operation(
        dict(record.attributes), record.body, record.severity_number, "otel.log_record",
        record.timestamp or record.observed_timestamp or 0, record.trace_id or 0, record.span_id or 0,
        resource.attributes if resource is not None else {}, {}, scope,
    )  # fmt: skip


def from_spans(spans: Any) -> List[Operation]:
    """The ``exception`` events of a batch of finished spans. The person and session may be on
    another span of the same trace (the server span, where the middleware puts ``user.id``, ends
    after the inner spans that recorded the exception first): the batch's spans are looked at."""
    by_trace: Dict[int, Dict[str, Any]] = {}
    for span in spans:
        context, attributes = span.context, span.attributes
        if context is not None and attributes and any(k in attributes for k in (*_PERSON_KEYS, *_SESSION_KEYS)):
            identity = by_trace.setdefault(context.trace_id, {})
            for key in (*_PERSON_KEYS, *_SESSION_KEYS):
                if attributes.get(key):
                    identity.setdefault(key, attributes[key])
    operations = []
    for span in spans:
        for event in getattr(span, "events", ()) or ():
            if event.name == schema.EXCEPTION_EVENT and has_exception(event.attributes):
                context = span.context
                trace_id = context.trace_id if context else 0
                resource = getattr(span, "resource", None)
                operation = _operation(
                    dict(event.attributes), None, None, "otel.span_event", event.timestamp or 0, trace_id,
                    context.span_id if context else 0, resource.attributes if resource is not None else {},
                    {**by_trace.get(trace_id, {}), **(span.attributes or {})}, None,
                )  # fmt: skip
                if operation is not None:
                    operations.append(operation)
    return operations


def from_otlp(
    attributes: Dict[str, Any], body: Any, severity: Any, time_unix_nano: int, trace_id: int, span_id: int,
    resource: Mapping[str, Any],
) -> Optional[Operation]:  # fmt: skip
    """A log record the gateway decoded (any language), when it has ``exception.*`` attributes."""
    if not has_exception(attributes):
        return None
    return _operation(
        attributes, body, severity, "otel.log_record", time_unix_nano, trace_id, span_id, resource, {}, None
    )


def _operation(
    attributes: Dict[str, Any], body: Any, severity: Any, source: str, time_unix_nano: int, trace_id: int,
    span_id: int, resource: Mapping[str, Any], span_attributes: Mapping[str, Any], scope: Any,
) -> Optional[Operation]:  # fmt: skip
    from .stacktrace import exception_properties  # its patterns are compiled on first use, not at import

    escaped = str(attributes.get("exception.escaped", "")).lower() == "true"
    found = exception_properties(attributes, handled=not escaped)
    if found is None:
        return None
    first = found["$exception_list"][0]
    if trace_id and not limits.recent.first(
        duplicate_key(trace_id, first["type"], attributes.get(schema.EXCEPTION_MESSAGE))
    ):
        count_drop("exception_duplicate")  # already sent: captured by posthog_otel, or on an inner span
        return None
    if not limits.records.allow((first["type"], _location(first))):
        count_drop("exception_rate_limited")
        warn_limited(
            "exception_rate_limited:records",
            "posthog_otel: %s at %s was recorded more than %d times in a burst; the rest are counted "
            "(drop_counts()['exception_rate_limited']), not sent (%d more every %d s)",
            first["type"], _location(first) or "an unknown place", limits.BURST, limits.REFILL, limits.REFILL_SECONDS,
        )  # fmt: skip
        return None
    routing = {k: v for k, v in attributes.items() if k.startswith(schema.NAMESPACE) or k in _ROUTING}
    _fill(routing, _PERSON_KEYS, span_attributes, _context.distinct_id_of(scope))
    _fill(routing, _SESSION_KEYS, span_attributes, _context.session_of(scope))
    tags = _context.tags_of(scope)
    others = {k: v for k, v in attributes.items() if k not in routing and not k.startswith(schema.EXCEPTION_PREFIX)}
    properties = (
        sanitize_properties({**tags, **others}, what="an exception record's attributes") if tags or others else {}
    )
    if isinstance(body, str) and body:
        properties.setdefault("log.message", _message_of(sendable_text(body)))
    properties["$exception_level"] = _level(severity)
    properties["$exception_source"] = source
    properties.update(found)
    if scope is not None:
        properties["$context_tags"] = list(tags)
    return Operation(schema.EXCEPTION, routing, properties, time_unix_nano, trace_id, span_id, resource)


def _fill(routing: Dict[str, Any], keys: Any, span_attributes: Mapping[str, Any], from_scope: Any) -> None:
    """The first of ``keys`` from the span, else the scope's value, where the record has none."""
    if any(routing.get(key) for key in keys):
        return
    for key in keys:
        value = span_attributes.get(key)
        if value:
            routing[key] = value
            return
    if isinstance(from_scope, str) and from_scope:
        routing[keys[0]] = from_scope


def _location(entry: Dict[str, Any]) -> str:
    frames = (entry.get("stacktrace") or {}).get("frames") or ()
    if not frames:
        return ""
    last = frames[-1]
    return "%s:%s" % (last.get("filename") or last.get("function"), last.get("lineno"))


def _level(severity: Any) -> str:
    number = getattr(severity, "value", severity)
    if isinstance(number, str):  # OTLP/JSON may write the enum's name: SEVERITY_NUMBER_ERROR2
        name = number.upper()
        return next((level for word, level in _NAMES if word in name), "error")
    if not isinstance(number, int) or number <= 0:
        return "error"
    return next(level for floor, level in _LEVELS if number >= floor or floor == 1)


def _message_of(body: str) -> str:
    """A log body up to its first line that starts a traceback (a formatter may append one)."""
    cut = body.find("\nTraceback (most recent call last):")
    return body if cut < 0 else body[:cut]
