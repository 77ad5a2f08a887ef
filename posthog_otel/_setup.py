"""``configure()``: the PostHog pipeline in one call, and the processor that keeps it clean."""

from __future__ import annotations

import os
import threading
from typing import Any, Optional, Protocol

from opentelemetry import _logs as otel_logs
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

from . import _emit, _lifecycle
from ._exceptions.records import has_exception, with_context_identity
from ._exporter import PostHogLogExporter
from ._log import logger
from ._schema import is_operation


#: The SDK's batch delay since 1.41 (up to 1.40 it waited 5 s): what a SIGKILL can lose, before the exporter.
DEFAULT_SCHEDULE_DELAY_MILLIS = 1000


class ProviderWithProcessors(Protocol):
    """What ``configure`` needs of a logger provider: the SDK's ``LoggerProvider``, or any
    provider that takes processors and hands out loggers as it does."""

    def add_log_record_processor(self, processor: LogRecordProcessor) -> None: ...

    def get_logger(self, name: str, version: Optional[str] = ...) -> Any: ...


class PostHogLogRecordProcessor(LogRecordProcessor):
    """A batch processor that only queues PostHog operation records.

    A LoggerProvider also carries application logs (and, with logging
    auto-instrumentation, every stdlib log line).  The exporter ignores those anyway,
    but they would still fill the batch queue, where a full queue drops the *oldest*
    record, which may be a PostHog operation.  Filtering at ``on_emit`` keeps them out.
    Batch options (``schedule_delay_millis``, ``max_queue_size``...) pass through to
    ``BatchLogRecordProcessor``.
    """

    def __init__(self, exporter: PostHogLogExporter, **batch_options: Any) -> None:
        self.exporter = exporter
        with _lifecycle.threads_leave_signals_to_the_main_thread():  # its worker thread, here and after fork
            self._batch = BatchLogRecordProcessor(exporter=exporter, **batch_options)
        self._detached = False
        self._exceptions = bool(getattr(getattr(exporter, "settings", None), "capture_exceptions", False))

    def on_emit(self, log_record: Any) -> None:
        if self._detached:
            return
        record = log_record.log_record
        if is_operation(getattr(record, "event_name", None)):
            self._batch.on_emit(log_record)
        elif self._exceptions and has_exception(record.attributes):  # capture_exceptions: OTel's exception logs
            self._batch.on_emit(with_context_identity(log_record))

    def shutdown(self) -> None:
        self._batch.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export the queue, then let the exporter send what its spool holds."""
        exported = self._batch.force_flush(timeout_millis)
        return self.exporter.force_flush(timeout_millis) and exported

    def detach(self) -> None:
        """Stop taking records (the SDK cannot remove a processor from a provider)."""
        self._detached = True


class Pipeline:
    """What ``configure()`` set up: flush it in tests and short scripts, shut it down at exit.

    The provider's own shutdown (``atexit``) also flushes it, so a script that forgets
    both still delivers what it emitted.
    """

    def __init__(self, logger_provider: ProviderWithProcessors, processor: PostHogLogRecordProcessor):
        self.logger_provider = logger_provider
        self.processor = processor
        self.exporter: PostHogLogExporter = processor.exporter

    def __repr__(self) -> str:
        return "Pipeline(exporter=%r)" % (self.exporter,)

    def flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything emitted so far; True when it was handed to PostHog in time."""
        return self.processor.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush, stop the worker, and stop routing operations to this pipeline."""
        self.processor.shutdown()
        self.processor.detach()


_lock = threading.Lock()
_current: Optional[Pipeline] = None


def configure(
    *,
    api_key: Optional[str] = None,
    host: Optional[str] = None,
    logger_provider: Optional[ProviderWithProcessors] = None,
    exporter: Optional[PostHogLogExporter] = None,
    schedule_delay_millis: Optional[float] = None,
    max_queue_size: Optional[int] = None,
    max_export_batch_size: Optional[int] = None,
    **exporter_settings: Any,
) -> Pipeline:
    """Send PostHog operations through OpenTelemetry: exporter, batch processor, provider.

    The provider is, in order: ``logger_provider`` if given; else the global SDK
    LoggerProvider if one is installed (yours, or ``opentelemetry-instrument``'s); else a
    new one, installed as the global provider.  The module-level operations
    (``posthog_otel.set``...) then write to it.  Exporter settings (``api_key``,
    ``host``, ``timeout``...) are the exporter's keyword arguments and fall back to the
    environment.  Calling ``configure`` again replaces the previous pipeline (it is
    flushed and shut down first).  A missing API key raises ``ValueError``.
    """
    global _current
    if exporter is None:
        exporter = PostHogLogExporter(api_key=api_key, host=host, **exporter_settings)
    elif api_key is not None or host is not None or exporter_settings:
        raise TypeError("configure(): pass either exporter=... or exporter settings, not both")
    if schedule_delay_millis is None and not os.environ.get("OTEL_BLRP_SCHEDULE_DELAY"):
        schedule_delay_millis = DEFAULT_SCHEDULE_DELAY_MILLIS
    batch_options = {
        name: value
        for name, value in (
            ("schedule_delay_millis", schedule_delay_millis),
            ("max_queue_size", max_queue_size),
            ("max_export_batch_size", max_export_batch_size),
        )
        if value is not None
    }
    processor = PostHogLogRecordProcessor(exporter, **batch_options)
    with _lock:
        previous, _current = _current, None
        if previous is not None:
            logger.info("posthog_otel: configure() called again; replacing the previous pipeline")
            previous.shutdown()
        provider = _choose_provider(logger_provider)
        provider.add_log_record_processor(processor)
        _emit.emitter.bind(provider)
        _current = Pipeline(provider, processor)
        return _current


def _choose_provider(given: Optional[ProviderWithProcessors]) -> ProviderWithProcessors:
    if given is not None:
        return given
    existing = otel_logs.get_logger_provider()
    if isinstance(existing, LoggerProvider):
        return existing
    provider = LoggerProvider()
    otel_logs.set_logger_provider(provider)
    return provider
