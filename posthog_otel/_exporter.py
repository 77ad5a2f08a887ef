"""The exporters: OTel's batch processors hand them records or spans, they hand PostHog events.

``PostHogLogExporter`` is the main road (log records are never sampled).
``PostHogSpanExporter`` reads span events named like the schema's operations, for code
that already writes identity as span events; trace sampling drops those with their span.
Both only adapt their input to ``Operation`` and hand it to a ``Dispatcher``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import _schema as schema
from ._config import redact
from ._dispatch import Dispatcher, exporter_settings
from ._mapping import Operation
from ._retry import RetryPolicy


class _PostHogExporter:
    """What both exporters share: settings, stats, flush and shutdown, all from the dispatcher."""

    def __init__(
        self,
        *,
        api_key: Optional[str] = None,
        host: Optional[str] = None,
        retry_policy: Optional[RetryPolicy] = None,
        transport: Optional[Any] = None,
        **settings: Any,
    ) -> None:
        self.settings = exporter_settings(api_key=api_key, host=host, **settings)
        self._dispatcher = Dispatcher(self.settings, retry_policy, transport)

    def __repr__(self) -> str:
        return "%s(host=%r, api_key=%r)" % (type(self).__name__, self.settings.host, redact(self.settings.api_key))

    def stats(self) -> Dict[str, Any]:
        """Events exported, request retries, events spooled and drained, drops by reason, spool depth."""
        return self._dispatcher.stats()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Send what the spool holds, within the timeout; True when nothing is left waiting."""
        return self._dispatcher.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 5000) -> None:
        """Stop: one last short try to empty the spool, then close. Spooled data stays on disk."""
        self._dispatcher.shutdown(timeout_millis)


class PostHogLogExporter(_PostHogExporter, LogRecordExporter):
    """Exports PostHog operation records (``event_name`` ``posthog.*``); ignores all others.

    Every argument is optional and falls back to the environment (``POSTHOG_API_KEY``,
    ``POSTHOG_HOST``, ``POSTHOG_OTEL_*``; every setting is in ``docs/configuration.md``),
    so the class works as an ``opentelemetry-instrument`` entry point (no arguments) and
    from declarative configuration (keyword arguments) alike.

    ``retry_policy`` replaces the default backoff schedule (and ``max_attempts``);
    ``transport`` replaces the HTTP layer (an object with ``post`` and ``close``).

    What PostHog does not take within ``spool_after`` seconds (connection errors,
    timeouts, 408/429/5xx, a refused key) goes to a durable spool and is sent, in order,
    when PostHog answers again; while anything is spooled, newer batches queue behind it.
    ``export`` returns SUCCESS only when PostHog accepted every event of the batch, and
    never raises. A missing API key raises ``ValueError`` here, at construction.
    """

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        operations = [Operation.from_log_record(r) for r in batch if _is_posthog_record(r)]
        if not operations:
            return LogRecordExportResult.SUCCESS
        ok = self._dispatcher.deliver(operations)
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE


class PostHogSpanExporter(_PostHogExporter, SpanExporter):
    """Exports span events named like the schema's operations (``posthog.set``...).

    A span event cannot carry a map body, so its attributes are split: the schema's
    routing attributes (``posthog.*``, ``user.id``, ``enduser.id``, ``session.id``) route
    it, and every other attribute is a property::

        span.add_event("posthog.set", {"posthog.distinct_id": "user123", "plan": "pro"})

    The event is tied to the span's trace (``$trace_id``/``$span_id``). Span events are
    only recorded on sampled spans: prefer the log exporter for anything that must arrive.
    Settings as for ``PostHogLogExporter``.
    """

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        operations = [op for span in spans for op in _span_operations(span)]
        if not operations:
            return SpanExportResult.SUCCESS
        return SpanExportResult.SUCCESS if self._dispatcher.deliver(operations) else SpanExportResult.FAILURE


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


def _is_posthog_record(readable: Any) -> bool:
    return schema.is_operation(getattr(readable.log_record, "event_name", None))
