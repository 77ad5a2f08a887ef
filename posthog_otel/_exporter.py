"""The exporters: OTel's batch processors hand them records or spans, they hand PostHog events.

``PostHogLogExporter`` is the main road (log records are never sampled).
``PostHogSpanExporter`` reads span events named like the schema's operations, for code
that already writes identity as span events; trace sampling drops those with their span.
Both only adapt their input to ``Operation`` and hand it to a ``Dispatcher``.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Dict, List, Optional, Sequence, Tuple

from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import _schema as schema
from ._config import exporter_settings, redact
from ._delivery.dispatch import Dispatcher
from ._delivery.handoff import Records
from ._delivery.http import HttpTransport, Transport
from ._delivery.retry import RetryPolicy
from ._emitter import emitter as module_emitter
from ._exceptions import records as exception_records
from ._hooks import MODULE, Hooks
from ._mapping import Operation


class _PostHogExporter:
    """What both exporters share: settings, the dispatcher, stats, flush and shutdown."""

    kind = ""

    def __init__(
        self,
        *,
        api_key: Optional[str] = None,
        host: Optional[str] = None,
        retry_policy: Optional[RetryPolicy] = None,
        transport: Optional[Transport] = None,
        _emitter: Any = None,
        _hooks: Optional[Hooks] = None,
        **settings: Any,
    ) -> None:
        self.settings = exporter_settings(api_key=api_key, host=host, **settings)
        #: ``super_properties``, ``before_send`` and ``on_error``, changeable while it runs: those
        #: given here win, then (for an exporter no ``Client`` owns) the module's, then the environment's.
        self.hooks = _hooks if _hooks is not None else hooks_for(self.settings, settings, MODULE)
        self._emitter = _emitter if _emitter is not None else module_emitter
        #: How requests reach PostHog: this exporter's deliveries, and the flags of its pipeline.
        self.transport: Transport = transport if transport is not None else HttpTransport()
        self._dispatcher = Dispatcher(
            self.settings, self.kind, self._read, retry_policy, self.transport, self.hooks, self._emitter
        )

    def __repr__(self) -> str:
        return "%s(host=%r, api_key=%r)" % (type(self).__name__, self.settings.host, redact(self.settings.api_key))

    def _read(self, items: Sequence[Any]) -> Tuple[List[Operation], List[int]]:
        raise NotImplementedError

    def _hand_off(self, items: Sequence[Any]) -> bool:
        """Hand the batch over; when an application thread calls (the SDK processor's
        ``force_flush``, which never asks the exporter to flush), also wait until it is
        delivered or safe in the spool, as a flush promises."""
        ok = self._dispatcher.hand_off(Records(items))
        if ok and not threading.current_thread().name.startswith(_OWN_THREADS):
            self._dispatcher.wait_safe(self.settings.timeout)
        return ok

    def stats(self) -> Dict[str, Any]:
        """Events exported, request retries, events spooled and drained, drops by reason,
        what waits in memory and in the spool."""
        return self._dispatcher.stats()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until what was exported so far is delivered (the spool's backlog too); True
        when nothing is left waiting within the timeout."""
        return self._dispatcher.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 5000) -> None:
        """Deliver what is pending while PostHog answers promptly, spool the rest, stop."""
        self._dispatcher.shutdown(timeout_millis)


class PostHogLogExporter(_PostHogExporter, LogRecordExporter):
    """Exports PostHog operation records (``event_name`` ``posthog.*``); ignores all others.

    Every argument is optional and falls back to the environment (``POSTHOG_API_KEY``,
    ``POSTHOG_HOST``, ``POSTHOG_OTEL_*``; every setting is in ``docs/configuration.md``),
    so the class works as an ``opentelemetry-instrument`` entry point (no arguments) and
    from declarative configuration (keyword arguments) alike.

    ``retry_policy`` replaces the default backoff schedule; ``transport`` replaces the
    HTTP layer of the exporter and of its pipeline's feature flags (an object with ``post``,
    ``get`` and ``close``, see ``posthog_otel._delivery.http.Transport``).

    ``export`` only hands the batch to the exporter's own thread and returns at once,
    whatever PostHog does: the SDK's worker always keeps up with the application. That
    thread delivers in order, with retries; what PostHog has not taken within
    ``spool_after`` seconds goes to a durable spool and is sent, in order, when it answers
    again. ``export`` never raises. A missing API key raises ``ValueError`` here, at
    construction.
    """

    kind = "logs"

    def __init__(self, **settings: Any) -> None:
        try:
            super().__init__(**settings)
        except ValueError:
            (settings.get("_emitter") or module_emitter).exporter_failed("no_api_key")
            raise
        self._emitter.exporter_opened(self.settings)
        self._open = True
        self._mark: Optional[int] = None
        _log_exporters.add(self)
        if self.settings.context_attributes:  # opentelemetry-instrument's road: the providers are set by now
            from . import _stamping

            _stamping.install(tags=self.settings.context_attribute_tags, quiet=True)

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        ok = self._hand_off(batch)
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def shutdown(self, timeout_millis: float = 5000) -> None:
        self._dispatcher.shutdown(timeout_millis, self.closing())

    def closing(self) -> Optional[int]:
        """The pipeline is shutting down: operations are refused from now on (None, counted)
        when no other exporter serves them. Returns the emitter's mark then (see ``_delivery.sequence``)."""
        if self._open:
            self._open = False
            self._mark = self._emitter.exporter_closed()
        return self._mark

    def _read(self, records: Sequence[Any]) -> Tuple[List[Operation], List[int]]:
        operations = []
        numbers = []
        is_operation, from_log_record = schema.is_operation, Operation.from_log_record
        exceptions = self.settings.capture_exceptions
        for readable in records:
            name = getattr(readable.log_record, "event_name", None)
            if not name:  # stdlib logging through OTel's handler: the name is an attribute
                name = record_event_name(readable.log_record)
                if is_operation(name):
                    operations.append(from_log_record(readable)._replace(name=name))
                    continue
            if is_operation(name):
                operation = from_log_record(readable)
                operations.append(operation)
                number = operation.attributes.get(schema.SEQUENCE)
                if type(number) is int:
                    numbers.append(number)
            elif exceptions:  # an application's log record with exception.* attributes
                found = exception_records.from_log_record(readable)
                if found is not None:
                    operations.append(found)
        return operations, numbers


def hooks_for(settings: Any, given: Dict[str, Any], fallback: Optional[Hooks]) -> Hooks:
    """The hooks of an exporter (or a client): those in ``given`` (code) first, then ``fallback``
    (the module's), then what ``settings`` took from the environment."""
    names = ("before_send", "on_error", "super_properties")
    explicit = {name: getattr(settings, name) for name in names if given.get(name) is not None}
    from_environment = {name: getattr(settings, name) for name in names if given.get(name) is None}
    return Hooks(
        explicit.get("before_send", ()), explicit.get("on_error"), explicit.get("super_properties"), settings.is_server,
        fallback=fallback,
        environment=Hooks(from_environment.get("before_send") or (), from_environment.get("on_error"),
                          from_environment.get("super_properties"), settings.is_server)
        if from_environment else None,
    )  # fmt: skip


def record_event_name(record: Any) -> Any:
    """A log record's event name: ``event_name``, else its ``event.name`` attribute (the semantic
    conventions' older place, and the only one a stdlib ``logging`` call can fill, through
    ``extra={"event.name": ...}``): the gateway reads OTLP records the same way."""
    name = getattr(record, "event_name", None)
    if name:
        return name
    attributes = getattr(record, "attributes", None)
    return attributes.get(schema.EVENT_NAME_ATTRIBUTE) if attributes else None


_log_exporters: "weakref.WeakSet[PostHogLogExporter]" = weakref.WeakSet()


def live_log_exporters() -> List[PostHogLogExporter]:
    """This process's log exporters that have not shut down (for the module's ``shutdown()``)."""
    return [exporter for exporter in list(_log_exporters) if exporter._open]


class PostHogSpanExporter(_PostHogExporter, SpanExporter):
    """Exports span events named like the schema's operations (``posthog.set``...).

    A span event cannot carry a map body, so its attributes are split: the schema's
    routing attributes (``posthog.*``, ``user.id``, ``enduser.id``, ``session.id``) route
    it, and every other attribute is a property::

        span.add_event("posthog.set", {"posthog.distinct_id": "user123", "plan": "pro"})

    The event is tied to the span's trace (``$trace_id``/``$span_id``). Span events are
    only recorded on sampled spans: prefer the log exporter for anything that must arrive.
    Settings and delivery as for ``PostHogLogExporter``.
    """

    kind = "traces"

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        ok = self._hand_off(spans)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def _read(self, spans: Sequence[Any]) -> Tuple[List[Operation], List[int]]:
        operations = [op for span in spans for op in _span_operations(span)]
        if self.settings.capture_exceptions:  # the spans' "exception" events
            operations += exception_records.from_spans(spans)
        return operations, []


#: Threads that call ``export`` without waiting: the SDK's batch workers (``OtelBatchLogRecordProcessor``,
#: ``OtelBatchSpanRecordProcessor`` in SDK 1.39 to 1.45) and our own (SIGTERM, exit).
_OWN_THREADS = ("OtelBatch", "posthog-otel")

_ROUTING = frozenset((*schema.DISTINCT_ID_FALLBACKS, *schema.SESSION_ID_FALLBACKS))


def _span_operations(span: Any) -> List[Operation]:
    operations = []
    for event in getattr(span, "events", ()) or ():
        if not schema.is_operation(event.name):
            continue
        attributes = dict(event.attributes or {})
        routing = {k: v for k, v in attributes.items() if k.startswith(schema.NAMESPACE) or k in _ROUTING}
        properties = {k: v for k, v in attributes.items() if k not in routing}
        context = span.context
        resource = getattr(span, "resource", None)
        operations.append(
            Operation(
                event.name,
                routing,
                properties,
                event.timestamp or 0,
                context.trace_id if context else 0,
                context.span_id if context else 0,
                resource.attributes if resource is not None else {},
            )
        )
    return operations
