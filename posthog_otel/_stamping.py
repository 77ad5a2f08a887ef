"""The context's person and session on every span and log record the application emits.

Inside ``new_context()`` / ``identify_context()`` (or a request the web middleware
identified), a span started or a log record emitted carries the person and the session as
attributes, under the names the tools that read them use:

=====================  ===================================================================
``posthogDistinctId``  PostHog Logs links a log line to a person by it (posthog.com/docs/logs/
                       link-person); PostHog's own ``PostHogContextSpanProcessor`` writes it
                       (``posthog/integrations/otel.py`` in its Python SDK 7.91.1, and
                       ``posthog-node/otel``)
``user.id``            OpenTelemetry's semantic conventions (the ``user`` registry); PostHog's
                       LLM analytics OTLP ingestion reads it first
``posthog.distinct_id``  this package's schema, and what PostHog's AI span processor writes
                       (``posthog/ai/otel``); the ingestion's last fallback
``sessionId``          PostHog Logs' session link (docs/logs/link-session-replay), and PostHog's
                       ``PostHogContextSpanProcessor``
``session.id``         OpenTelemetry's semantic conventions (the ``session`` registry)
``$session_id``        PostHog's event property, as PostHog's AI span processor writes it
=====================  ===================================================================

Explicit attributes win, as in PostHog's processor: a span or record that already names a
person (any of the person names, or ``enduser.id``) gets none of them, one that names a
session gets no session. Tags (``tag()``) are added only with ``tags=True``: they may hold
what the application meant for PostHog alone. The schema's own operation records are left as
they are.

The span processor adds them at the span's start (``on_start``), so spans started inside the
context carry them; a server span started before the context opened (OpenTelemetry's WSGI or
ASGI middleware) gets them from the web integrations (``enrich_current_span``). The log record
processor adds them on emit, before any exporting processor queues the record: ``install``
puts it first on the provider.
"""

from __future__ import annotations

import json
import math
import weakref
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from opentelemetry import trace
from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk.trace import SpanProcessor

from . import _context, _state
from ._log import count_drop, warn_limited
from ._schema import is_operation

PERSON_KEYS: Tuple[str, ...] = ("posthogDistinctId", "user.id", "posthog.distinct_id")
SESSION_KEYS: Tuple[str, ...] = ("sessionId", "session.id", "$session_id")
#: A span or record that already has one of these names its own person (or session): kept.
PERSON_CLAIMS = frozenset((*PERSON_KEYS, "enduser.id"))
SESSION_CLAIMS = frozenset((*SESSION_KEYS, "posthog.session_id"))


def context_attributes(
    context: Any = None,
    existing: Optional[Mapping[str, Any]] = None,
    tags: bool = False,
    person_keys: Sequence[str] = PERSON_KEYS,
    session_keys: Sequence[str] = SESSION_KEYS,
) -> Dict[str, Any]:
    """The attributes to add for the context (an OTel context; None: the current one): the
    person and session under each name, the tags if asked, none that ``existing`` already has."""
    scope = _context.scope_of(context) if context is not None else None
    if scope is None:
        scope = _context.current_scope()
    person = _context.context_distinct_id(scope)
    session = _context.context_session_id(scope)
    if not isinstance(person, str):
        person = None
    if person is None and session is None and not (tags and scope is not None):
        return {}
    # The names present, read once: the SDK's attribute mappings take a lock per look-up.
    present: Any = existing.keys() if type(existing) is dict else (set(existing) if existing else ())
    extra: Dict[str, Any] = {}
    if tags:
        for key, value in _context.tags_of(scope).items():
            converted = attribute_value(value)
            if converted is not None and key not in present:
                extra[key] = converted
    if person and PERSON_CLAIMS.isdisjoint(present):
        for key in person_keys:
            extra[key] = person
    if session and SESSION_CLAIMS.isdisjoint(present):
        for key in session_keys:
            extra[key] = session
    return extra


def attribute_value(value: Any) -> Any:
    """A tag as an OpenTelemetry attribute value: text, bools, ints, finite floats and lists of
    one of them as they are; anything else as its JSON text; None when it has none."""
    if isinstance(value, (str, bool)) or (isinstance(value, int) and -(2**63) <= value < 2**63):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)) and value and len({type(v) for v in value}) == 1:
        if isinstance(value[0], (str, bool, int)) and not isinstance(value[0], float):
            return list(value)
    try:
        return json.dumps(value, default=str, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return None


class PostHogContextSpanProcessor(SpanProcessor):
    """Adds the context's person and session (and, with ``tags=True``, its tags) to every span
    started inside it. Add it to your ``TracerProvider`` (any position: it works at the start),
    or let ``configure(context_attributes=True)`` do it."""

    def __init__(self, *, tags: bool = False, person_keys: Sequence[str] = PERSON_KEYS,
                 session_keys: Sequence[str] = SESSION_KEYS) -> None:  # fmt: skip
        self.tags = tags
        self.person_keys = tuple(person_keys)
        self.session_keys = tuple(session_keys)

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        try:
            if not span.is_recording():
                return
            attributes = span.attributes
            extra = context_attributes(parent_context, attributes, self.tags, self.person_keys, self.session_keys)
            if extra and _fits(span, attributes, extra):
                span.set_attributes(extra)
        except Exception:
            _failed("span")

    def on_end(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class PostHogContextLogRecordProcessor(LogRecordProcessor):
    """Adds the context's person and session (and, with ``tags=True``, its tags) to every log
    record emitted inside it, the schema's own records aside. It must run before the processors
    that export (they queue the record as it is): ``install()`` puts it first."""

    def __init__(self, *, tags: bool = False, person_keys: Sequence[str] = PERSON_KEYS,
                 session_keys: Sequence[str] = SESSION_KEYS) -> None:  # fmt: skip
        self.tags = tags
        self.person_keys = tuple(person_keys)
        self.session_keys = tuple(session_keys)

    def on_emit(self, log_record: Any) -> None:
        try:
            record = log_record.log_record
            if is_operation(getattr(record, "event_name", None)):
                return
            attributes = record.attributes
            extra = context_attributes(getattr(record, "context", None), attributes, self.tags, self.person_keys,
                                       self.session_keys)  # fmt: skip
            if extra:
                _add_to_record(log_record, record, attributes, extra)
        except Exception:
            _failed("log record")

    def enabled(self, **_: Any) -> bool:
        return False  # it exports nothing: it must not make a logger look wanted on its own

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _fits(span: Any, attributes: Any, extra: Dict[str, Any]) -> bool:
    """False (counted) when adding would push the span past its attribute limit, where the SDK
    would evict the application's oldest attribute: PostHog's processor skips the span too."""
    limit = getattr(getattr(span, "_limits", None), "max_span_attributes", None)
    if isinstance(limit, int) and len(attributes or ()) + len(extra) > limit:
        count_drop("context_attributes_limit")
        return False
    return True


def _add_to_record(log_record: Any, record: Any, attributes: Any, extra: Dict[str, Any]) -> None:
    """One new mapping with the additions, in place of the record's: setting six keys one by one
    on the SDK's locked, validating mapping costs ten times as much (``benchmarks/stamping.py``).
    Our values are text already; a record at its attribute limit is left alone (counted), as a
    span is, rather than have its own attributes evicted."""
    limit = getattr(getattr(log_record, "limits", None), "max_log_record_attributes", None)
    if isinstance(limit, int) and len(attributes or ()) + len(extra) > limit:
        count_drop("context_attributes_limit")
        return
    copy = getattr(attributes, "copy", None)  # the SDK's mapping copies its dict under one lock
    record.attributes = {**(copy() if callable(copy) else (attributes or {})), **extra}


def _failed(what: str) -> None:
    """Counted and logged; raised only under this package's own test suite (not with ``debug``:
    the caller is whoever started a span or logged a line, not a PostHog call)."""
    from ._guard import internal_error

    try:
        internal_error("context attributes on a " + what)
    except Exception:
        if _state.raise_internal_errors:
            raise


def enrich_current_span(span: Any = None) -> None:
    """The context's person and session on the current span (PostHog's ``enrich_current_span``):
    for a server span started before the request's context opened."""
    try:
        span = span if span is not None else trace.get_current_span()
        if span.is_recording():
            extra = context_attributes(None, getattr(span, "attributes", None) or {})
            if extra:
                span.set_attributes(extra)
    except Exception:
        _failed("span")


# --- installing them ------------------------------------------------------------------------

_installed: "weakref.WeakSet[Any]" = weakref.WeakSet()


def install(logger_provider: Any = None, tracer_provider: Any = None, tags: bool = False, quiet: bool = False) -> None:
    """Add both processors, once per provider: to ``tracer_provider`` (else the global one) and to
    ``logger_provider`` (else the global one), the latter in first place, so the records the
    exporting processors queue already carry the attributes. A provider that is not the SDK's
    (a proxy before set-up) is said once (unless ``quiet``: an exporter being built, which
    ``configure()`` follows with a provider) and left alone."""
    from opentelemetry import _logs

    tracer_provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    logger_provider = logger_provider if logger_provider is not None else _logs.get_logger_provider()
    if tracer_provider not in _installed:
        if callable(getattr(tracer_provider, "add_span_processor", None)):
            tracer_provider.add_span_processor(PostHogContextSpanProcessor(tags=tags))
            _installed.add(tracer_provider)
        elif not quiet:
            _not_sdk("TracerProvider", "spans", "PostHogContextSpanProcessor", "add_span_processor")
    if logger_provider not in _installed:
        if callable(getattr(logger_provider, "add_log_record_processor", None)):
            _add_first(logger_provider, PostHogContextLogRecordProcessor(tags=tags))
            _installed.add(logger_provider)
        elif not quiet:
            _not_sdk("LoggerProvider", "log records", "PostHogContextLogRecordProcessor", "add_log_record_processor")


def _add_first(provider: Any, processor: Any) -> None:
    """The SDK has no way to put a processor before those already added; its multi-processor
    keeps them in a tuple it replaces whole under its lock, and so do we. An SDK laid out
    otherwise gets the processor last, with a warning: records may leave without the person."""
    multi: Any = getattr(provider, "_multi_log_record_processor", None)
    lock = getattr(multi, "_lock", None)
    if isinstance(getattr(multi, "_log_record_processors", None), tuple) and lock is not None:
        with lock:
            multi._log_record_processors = (processor, *multi._log_record_processors)
        return
    provider.add_log_record_processor(processor)
    warn_limited("context_attributes:order", "posthog_otel: this LoggerProvider cannot take a processor before its "
                 "others; PostHogContextLogRecordProcessor was added last, so records its earlier processors export "
                 "may leave without the person: add it first yourself")  # fmt: skip


def _not_sdk(kind: str, what: str, processor: str, method: str) -> None:
    warn_limited("context_attributes:" + kind, "posthog_otel: context_attributes is on, but the global %s is not the "
                 "SDK's yet, so %s will not carry the person; set it up first, or call %s(%s()) on it yourself",
                 kind, what, method, processor)  # fmt: skip


def installed(provider: Any) -> bool:
    return provider in _installed


def _reset_for_tests() -> None:
    _installed.clear()
