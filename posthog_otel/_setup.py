"""``configure()``: the PostHog pipeline in one call, and the processor that keeps it clean."""

from __future__ import annotations

import dataclasses
import os
import threading
import weakref
from typing import Any, Dict, List, Optional, Protocol

from opentelemetry import _logs as otel_logs
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

from . import _attributes, _emitter, _hooks, _lifecycle, _options, _state
from ._config import Settings
from ._exceptions.records import has_exception, with_context_identity
from ._exporter import PostHogLogExporter, record_event_name
from ._lifecycle import flush_global
from ._log import logger
from ._schema import is_operation
from ._sigterm import threads_leave_signals_to_the_main_thread

#: The SDK's batch delay since 1.41 (up to 1.40 it waited 5 s): what a SIGKILL can lose, before the exporter.
DEFAULT_SCHEDULE_DELAY_MILLIS = 1000
#: What PostHog's SDK queues (its ``max_queue_size``); the OTel SDK's own default is 2048, which a
#: burst on a busy machine overflows before its worker gets the CPU (the oldest are dropped).
DEFAULT_MAX_QUEUE_SIZE = 10_000


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
        with threads_leave_signals_to_the_main_thread():  # its worker thread, here and after fork
            self._batch = BatchLogRecordProcessor(exporter=exporter, **batch_options)
        self._detached = False
        self.slot: Optional[_Slot] = None  # set by configure(), where it shares a provider
        self._exceptions = bool(getattr(getattr(exporter, "settings", None), "capture_exceptions", False))
        # Taken around each hand-over to the batch processor and by ``detach``: a record that passed
        # the check is queued before the processor can shut down (after, the SDK drops it unsaid).
        self._open = threading.Lock()
        self._successor: Optional["PostHogLogRecordProcessor"] = None

    def on_emit(self, log_record: Any) -> None:
        if self._detached:
            self._forward(log_record)
            return
        record = log_record.log_record
        if is_operation(getattr(record, "event_name", None) or record_event_name(record)):
            pass
        elif self._exceptions and has_exception(record.attributes):  # capture_exceptions: OTel's exception logs
            log_record = with_context_identity(log_record)
        else:
            return
        with self._open:
            if not self._detached:
                self._batch.on_emit(log_record)
                return
        self._forward(log_record)

    def _forward(self, log_record: Any) -> None:
        """A record that reached this processor after it let go: to the one that replaced it."""
        successor = self._successor
        if successor is not None:
            successor.on_emit(log_record)

    def shutdown(self) -> None:
        # From here the SDK's processor drops records without a word: operations are refused
        # instead (None, counted); one racing this is counted by the exporter's shutdown.
        self.exporter.closing()
        self._batch.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export the queue, then let the exporter send what its spool holds."""
        if self._detached:
            return True  # shut down: nothing of ours is left here (the provider may still flush others)
        exported = self._batch.force_flush(timeout_millis)
        return self.exporter.force_flush(timeout_millis) and exported

    def detach(self, successor: Optional["PostHogLogRecordProcessor"] = None) -> None:
        """Stop taking records (and leave the provider's slot: the SDK cannot remove a processor);
        records that still reach it go to ``successor`` (``configure()`` replacing it)."""
        self._successor = successor
        with self._open:  # no hand-over is under way from here on
            self._detached = True
        slot = self.slot
        if slot is not None:
            slot.processors = [p for p in slot.processors if p is not self]


class Pipeline:
    """What ``configure()`` (or a ``Client``) set up: flush it in tests and short scripts, shut it
    down at exit.

    The provider's own shutdown (``atexit``) also flushes it, so a script that forgets
    both still delivers what it emitted.
    """

    def __init__(
        self,
        logger_provider: ProviderWithProcessors,
        processor: PostHogLogRecordProcessor,
        arguments: Optional[Dict[str, Any]] = None,
        generation: Optional[int] = None,
    ):
        self.logger_provider = logger_provider
        self.processor = processor
        self.exporter: PostHogLogExporter = processor.exporter
        #: ``configure()``'s keywords, to build it again when a module option changes (None: cannot).
        self.arguments = arguments
        #: The module options' generation it was built with (None: not built from them).
        self.generation = generation
        self.sdk_disabled = _emitter.sdk_disabled()

    def __repr__(self) -> str:
        return "Pipeline(exporter=%r)" % (self.exporter,)

    def flush(self, timeout_seconds: Optional[float] = 30.0, *, timeout_millis: Optional[float] = None) -> bool:
        """Export everything emitted so far; True when it was delivered (or dropped, counted) in
        time. False, with a warning saying what waits and why, at the timeout, or at once when
        no wait can help (PostHog refused the key; the next attempt is due after the timeout):
        what memory holds is then in the spool. ``timeout_seconds`` as PostHog's ``flush``
        (None: as long as it takes); ``timeout_millis`` as OpenTelemetry's ``force_flush``."""
        if self.sdk_disabled:
            _emitter.warn_sdk_disabled()
            return False
        if _hooks.inside_callback("flush"):
            return False
        return self.processor.force_flush(int(_lifecycle.timeout_millis(timeout_seconds, timeout_millis)))

    def shutdown(self) -> None:
        """Stop routing operations to this pipeline, deliver what it holds, stop its worker."""
        if _hooks.inside_callback("shutdown"):
            return
        if not self.processor._detached:
            self.processor.detach()
        self.processor.shutdown()
        _state.discard_pipeline(self)


_lock = threading.RLock()


def current() -> Optional[Pipeline]:
    """The module's pipeline (``configure()``, or built from ``posthog_otel.api_key``), if any."""
    current: Optional[Pipeline] = _state.pipeline
    return current


def pipelines() -> List[Pipeline]:
    return _state.pipelines()


def live_keys() -> List[str]:
    """The project keys of this process's PostHog exporters (for messages; shown redacted)."""
    from . import _lifecycle

    return [d.settings.api_key for d in _lifecycle.live() if d.settings.api_key]


def configure(
    *,
    api_key: Optional[str] = None,
    host: Optional[str] = None,
    logger_provider: Optional[ProviderWithProcessors] = None,
    exporter: Optional[PostHogLogExporter] = None,
    schedule_delay_millis: Optional[float] = None,
    max_queue_size: Optional[int] = None,
    max_export_batch_size: Optional[int] = None,
    **options: Any,
) -> Pipeline:
    """Send PostHog operations through OpenTelemetry: exporter, batch processor, provider.

    The provider is, in order: ``logger_provider`` if given; else the global SDK
    LoggerProvider if one is installed (yours, or ``opentelemetry-instrument``'s); else a
    new one, installed as the global provider.  The module-level operations
    (``posthog_otel.set``...) then write to it.  Exporter settings (``api_key``,
    ``host``, ``timeout``...) are the exporter's keyword arguments and fall back to the
    options set on the module (``posthog_otel.host = ...``), then to the environment.
    PostHog's options are taken by their PostHog names too (``disabled``, ``send``,
    ``before_send``, ``flush_interval``... see README's "Coming from PostHog's SDK").
    Calling ``configure`` again replaces the previous pipeline (it is flushed and shut down
    first).  A missing API key raises ``ValueError``.
    """
    arguments = dict(
        api_key=api_key, host=host, logger_provider=logger_provider, exporter=exporter,
        schedule_delay_millis=schedule_delay_millis, max_queue_size=max_queue_size,
        max_export_batch_size=max_export_batch_size, **options,
    )  # fmt: skip
    given = _options.translate(
        {**({"api_key": api_key} if api_key is not None else {}), **options}, "configure()", SETTINGS
    )
    batch = {**given.batch, **_given(schedule_delay_millis=schedule_delay_millis, max_queue_size=max_queue_size,
                                     max_export_batch_size=max_export_batch_size)}  # fmt: skip
    check_batch(batch, "configure()")
    if exporter is None:
        module = _options.translate(_attributes.pipeline_options(), "posthog_otel.").settings
        settings = {**module, **({"host": host} if host is not None else {}), **given.settings}
        exporter = PostHogLogExporter(**settings)
        generation: Optional[int] = _attributes.generation()
    elif api_key is not None or host is not None or given.settings:
        raise TypeError("configure(): pass either exporter=... or exporter settings, not both")
    else:
        generation = None  # a ready exporter: module options cannot be applied to it
    with _lock:
        # The new pipeline takes the operations before the old one lets go of them: nothing emitted
        # meanwhile falls between the two (at worst one reaches both: PostHog keeps one per uuid).
        previous = _state.pipeline
        provider = _choose_provider(logger_provider)
        pipeline = build(provider, exporter, batch, arguments, generation)
        if exporter.settings.context_attributes:  # after the provider exists (configure() may have made it)
            from . import _stamping

            _stamping.install(provider, tags=exporter.settings.context_attribute_tags)
        _emitter.emitter.bind(provider)
        if previous is not None:
            previous.processor.detach(successor=pipeline.processor)
        _attributes.apply_switches(_emitter.emitter, {**_attributes.switches(), **given.switches}, None)
        _state.pipeline = pipeline
    if previous is not None:  # outside the lock: delivering what it holds may take seconds
        logger.info("posthog_otel: configure() called again; replacing the previous pipeline")
        previous.shutdown()
    if pipeline.sdk_disabled:
        _emitter.warn_sdk_disabled()
    return pipeline


def build(
    provider: ProviderWithProcessors,
    exporter: PostHogLogExporter,
    batch: Dict[str, Any],
    arguments: Optional[Dict[str, Any]] = None,
    generation: Optional[int] = None,
) -> Pipeline:
    """A processor for ``exporter`` on ``provider``, registered for exit and SIGTERM."""
    if batch.get("schedule_delay_millis") is None and not os.environ.get("OTEL_BLRP_SCHEDULE_DELAY"):
        batch["schedule_delay_millis"] = DEFAULT_SCHEDULE_DELAY_MILLIS
    if batch.get("max_queue_size") is None and not os.environ.get("OTEL_BLRP_MAX_QUEUE_SIZE"):
        batch["max_queue_size"] = DEFAULT_MAX_QUEUE_SIZE
    processor = PostHogLogRecordProcessor(exporter, **{k: v for k, v in batch.items() if v is not None})
    _route(provider, processor)
    pipeline = Pipeline(provider, processor, arguments, generation)
    _state.add_pipeline(pipeline)  # exit, SIGTERM and fork flush its provider
    return pipeline


class _Slot(LogRecordProcessor):
    """The one place a provider gives PostHog's processors: ``configure()`` again (or a module
    option that rebuilds the pipeline) puts the new processor here instead of adding one more
    to the provider, which can never remove one (each would cost a call per record, forever)."""

    def __init__(self) -> None:
        self.processors: List[PostHogLogRecordProcessor] = []

    def on_emit(self, log_record: Any) -> None:
        for processor in self.processors:  # usually one; two for the instant a replacement takes over
            processor.on_emit(log_record)

    def shutdown(self) -> None:
        for processor in list(self.processors):
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all([processor.force_flush(timeout_millis) for processor in list(self.processors)])


_slots: "weakref.WeakKeyDictionary[Any, _Slot]" = weakref.WeakKeyDictionary()


def _route(provider: ProviderWithProcessors, processor: PostHogLogRecordProcessor) -> None:
    """``processor`` takes ``provider``'s operations; the processors it replaces leave the slot
    when they detach (``Pipeline.shutdown``, or ``configure()`` replacing them)."""
    with _lock:
        try:
            slot = _slots.get(provider)
        except TypeError:  # a provider that cannot be weakly referenced: one processor each, as before
            provider.add_log_record_processor(processor)
            return
        if slot is None:
            slot = _slots[provider] = _Slot()
            provider.add_log_record_processor(slot)
        slot.processors = [p for p in slot.processors if not p._detached] + [processor]
        processor.slot = slot


def check_batch(batch: Dict[str, Any], where: str) -> None:
    """Refuse batch options the SDK's processor would refuse, naming PostHog's option and ours,
    before anything (threads, a spool) is built."""
    size, queue = batch.get("max_export_batch_size"), batch.get("max_queue_size")
    if size is not None and queue is not None and size > queue:
        raise ValueError("posthog_otel: %s flush_at (max_export_batch_size=%d) must not exceed max_queue_size=%d"
                         % (where, size, queue))  # fmt: skip
    if queue is not None and size is None and queue < 512:
        batch["max_export_batch_size"] = queue  # the SDK's default batch (512) must fit the queue


def _given(**values: Any) -> Dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


#: Our own settings, accepted by ``configure()`` by their names beside PostHog's options.
SETTINGS = frozenset(f.name for f in dataclasses.fields(Settings)) | {"retry_policy", "transport"}


@_state.at_fork
def after_fork() -> None:
    """In a forked child: a parent thread may have held the lock at the fork."""
    global _lock
    _lock = threading.RLock()


def _choose_provider(given: Optional[ProviderWithProcessors]) -> ProviderWithProcessors:
    if given is not None:
        return given
    existing = otel_logs.get_logger_provider()
    if isinstance(existing, LoggerProvider):
        return existing
    provider = LoggerProvider()
    otel_logs.set_logger_provider(provider)
    return provider


# --- PostHog's module-level lifecycle ----------------------------------------------------


def setup() -> Optional[Pipeline]:
    """Build the module's pipeline now from the module's options (``posthog_otel.api_key``...),
    as the first operation would; returns it (None when the options name no key and nothing
    was configured). PostHog's ``setup()`` returns its client; here the pipeline is the handle."""
    _emitter.emitter.ready or _emitter.emitter.resolve(operation=False)
    return current()


def flush(timeout_seconds: Optional[float] = 10) -> bool:
    """Deliver what was emitted so far, in every set-up style (``configure()``, the module's
    ``api_key``, ``opentelemetry-instrument``), within ``timeout_seconds`` (PostHog's unit;
    None: as long as it takes). True when nothing is left waiting (delivered, or dropped and
    counted); False when something is (in memory or the spool: said, with why, at once when no
    wait can help, as a refused key), or when nothing could deliver."""
    try:
        if _hooks.inside_callback("flush"):
            return False
        routed = _state.default_client
        if routed is not None:
            return bool(routed.flush(timeout_seconds))
        setup()
        pipeline = current()
        if pipeline is not None:
            return pipeline.flush(timeout_seconds)
        if _emitter.is_placeholder(otel_logs.get_logger_provider()):
            logger.warning("posthog_otel: flush(): nothing is configured (no configure(), no posthog_otel.api_key, "
                           "no LoggerProvider), so nothing was delivered")  # fmt: skip
            return False
        return flush_global(timeout_seconds)
    except Exception:
        from ._guard import internal_error

        internal_error("flush")
        return False


def shutdown() -> None:
    """Deliver while PostHog answers promptly, spool the rest, and stop: later operations return
    None, counted as ``after_shutdown``. For final clean-up (PostHog's ``shutdown``)."""
    try:
        if _hooks.inside_callback("shutdown"):
            return
        routed = _state.default_client
        if routed is not None:
            routed.shutdown()
            return
        with _lock:
            pipeline, _state.pipeline = _state.pipeline, None
        if pipeline is not None:
            pipeline.shutdown()
            return
        from ._exporter import live_log_exporters

        exporters = [e for e in live_log_exporters() if e._emitter is _emitter.emitter]
        if exporters:  # opentelemetry-instrument's pipeline: flushed, its other exporters stay up
            flush_global(30.0)
        for exporter in exporters:
            exporter.shutdown()
    except Exception:
        from ._guard import internal_error

        internal_error("shutdown")


def join() -> None:
    """PostHog's ``join()``: deliver what is queued and stop (as ``shutdown()``)."""
    shutdown()
