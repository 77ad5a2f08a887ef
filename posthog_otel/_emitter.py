"""The emitter: where an operation's record goes, and whether it may go now.

Below the operations (``_emit``) and beside the pipeline: the exporter and ``configure()`` tell
the emitter when an exporter opens, closes or fails; the operations ask it to emit. Each record
gets its sequence number here (``posthog.seq``: the exporter counts the gaps as SDK drops).
"""

from __future__ import annotations

import builtins
import itertools
import logging
import os
import threading
from collections import Counter
from typing import Any, Callable, Dict, Optional, Set

from opentelemetry import _logs as otel_logs
from opentelemetry._logs import SeverityNumber

from . import _schema as schema
from . import _state
from ._baggage import set_propagation
from ._limits import LimitsSource
from ._log import count_drop, warn_limited
from ._version import __version__


class _Emitter:
    """Holds the logger the operations of one client write to, and whether they may.

    The module's operations use ``emitter``: the global LoggerProvider's logger by default,
    ``configure(logger_provider=...)``'s when given. Until an SDK provider exists the API hands
    out a proxy that drops records, so the first operation checks once, builds the pipeline
    from the module's attributes (``posthog_otel.api_key = ...``) if they say how, and
    otherwise warns instead of losing data quietly. A ``Client`` has an emitter of its own,
    bound to its own provider.

    ``blocked`` is why operations are refused right now (a drop-counter reason), or None: the
    application's own switches (``disabled``, ``send=False``) first, then the pipeline's state
    (the OTel SDK disabled, the exporter shut down or unable to start). It is computed when
    one of them changes, so the emit path reads one attribute.
    """

    def __init__(self, module: bool = True) -> None:
        #: The module's emitter resolves the provider itself; a Client's is bound at construction.
        self.module = module
        self.logger: Any = None
        self.limits: Optional[LimitsSource] = None
        self.ready = False
        #: Numbers every record (``posthog.seq``): the exporter counts the gaps as SDK drops.
        self.sequence = itertools.count(1)
        #: Numbers taken without a record (a checkpoint, a closing mark): no gap, nothing lost.
        self.unused: Set[int] = builtins.set()  # this module's ``set`` is the operation
        #: Once the last exporter closed: numbered records from here on refuse themselves, and
        #: ``_mark`` is the first number the closing exporter does not account for.
        self._closed_from: float = float("inf")
        self._mark: Optional[int] = None
        self.blocked: Optional[str] = None
        #: ``sync_mode``: called after each operation, returns once it is delivered (or not).
        self.sync: Optional[Callable[[], Any]] = None
        self.sync_mode = False
        #: The application's switches, PostHog's ``disabled`` and ``send``.
        self.disabled = False
        self.send = True
        self._switch: Optional[str] = None  # "disabled" or "not_sent"
        self._sdk_disabled = False  # OTEL_SDK_DISABLED: the provider hands out no-op loggers
        self._refusal: Optional[str] = None  # "after_shutdown", "exporter_failed"
        self._failure = ""  # why the exporter could not start
        #: The drops of this emitter's operations at the call (the exporters' stats show them).
        self.drops: "Counter[str]" = Counter()
        self._exporters = 0
        self._lock = threading.Lock()

    def bind(self, logger_provider: Any) -> None:
        self.logger = logger_provider.get_logger(schema.SCOPE, __version__)
        self.limits = LimitsSource(self.logger)
        self.ready = True
        self._sdk_disabled = type(self.logger).__name__ == "NoOpLogger" or sdk_disabled()
        if self._sdk_disabled:
            warn_sdk_disabled()
        self._update()

    def unbind(self) -> None:
        """Forget the provider and every exporter (for tests and ``posthog_otel.testing``)."""
        self.logger = None
        self.limits = None
        self.ready = False
        self.sync = None
        self.drops.clear()
        set_propagation(None)
        with self._lock:
            self._exporters, self._refusal, self._sdk_disabled = 0, None, False
            self._closed_from, self._mark = float("inf"), None
            self._update()

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def checkpoint(self) -> int:
        """The first sequence number a record emitted from now on can carry (the number taken
        to learn it is no record's: marked unused, so no exporter counts it as a drop)."""
        number = next(self.sequence)
        self.unused.add(number)
        return number + 1

    def switch_values(self, disabled: Optional[bool] = None, send: Optional[bool] = None) -> None:
        """The application's ``disabled`` and ``send`` (PostHog's meanings); None keeps one as is."""
        if disabled is not None:
            self.disabled = bool(disabled)
        if send is not None:
            self.send = bool(send)
        self._switch = "disabled" if self.disabled else (None if self.send else "not_sent")
        self._update()

    def exporter_opened(self, settings: Any = None) -> None:
        """A PostHog exporter started; its ``propagate_identity`` applies to the operations."""
        if settings is not None and self.module:
            set_propagation(settings.propagate_identity)
        with self._lock:
            self._exporters += 1
            self._refusal = None
            self._closed_from, self._mark = float("inf"), None
            self._update()

    def exporter_closed(self) -> Optional[int]:
        """An exporter of this emitter shuts down. When it is the last, later operations would
        vanish: they are refused from now on, and the mark is returned: every number below it
        was taken by a record that either reaches that exporter or is its to count as lost."""
        with self._lock:
            self._exporters -= 1
            if self._exporters > 0:
                return None
            self._exporters, self._refusal = 0, "after_shutdown"
            self._update()
            self._closed_from = -1  # before the mark is taken: a later number sees it
            number = next(self.sequence)
            self.unused.add(number)
            self._mark = number
            return number

    def exporter_failed(self, reason: str, why: str = "") -> None:
        """An exporter could not be built (no API key...): nothing would deliver the operations."""
        with self._lock:
            if self._exporters <= 0:
                self._refusal, self._failure = reason, why
            self._update()

    @property
    def exporters(self) -> int:
        return self._exporters

    def _update(self) -> None:
        self.blocked = self._switch or ("otel_sdk_disabled" if self._sdk_disabled else None) or self._refusal

    def resolve(self, operation: bool = True) -> bool:
        """Find (or, from the module's options, build) the pipeline; ``operation``: an operation
        waits on it, so not finding one drops it (counted)."""
        provider = otel_logs.get_logger_provider()
        if self.module and _module_configures(provider):
            return True
        if is_placeholder(provider):
            if not operation:
                return False
            count_drop("no_logger_provider")
            warn_limited(
                "no_logger_provider",
                "posthog_otel: no OpenTelemetry LoggerProvider is configured, so PostHog operations are "
                "being dropped. Call posthog_otel.configure() at start-up (or set posthog_otel.api_key), or "
                "run under `opentelemetry-instrument` with OTEL_LOGS_EXPORTER=posthog.",
            )
            return False
        self.bind(provider)
        return self.blocked is None

    def emit(self, event_name: str, attributes: Dict[str, Any], body: Any, timestamp: Optional[int]) -> bool:
        if self.blocked is not None:
            return self._refuse(self.blocked)
        if not self.ready and not self.resolve():
            return self._refuse(self.blocked) if self.blocked is not None else False
        limits = self.limits
        if limits is not None and limits.may_refuse(len(attributes) + 1):
            # Checked with posthog.seq in place (its value is an int: only its count matters),
            # and before a number is taken: a refused record must not look like an SDK drop.
            attributes[schema.SEQUENCE] = 0
            limits.check(attributes)
        number = next(self.sequence)
        if number >= self._closed_from:  # the last exporter closed while this call ran
            return self._refuse_numbered(number)
        attributes[schema.SEQUENCE] = number
        self.logger.emit(
            timestamp=timestamp,
            severity_number=SeverityNumber.INFO,
            body=body,
            attributes=attributes,
            event_name=event_name,
        )
        if self.sync is not None:
            self.sync()
        return True

    def _refuse_numbered(self, number: int) -> bool:
        """Refused after taking a number: below the closing exporter's mark it is that exporter's
        to count (a record it never saw), above it ours; never both."""
        with self._lock:  # the closing exporter holds it until its mark is set
            ours = self._mark is None or number > self._mark
        return self._refuse("after_shutdown") if ours else False

    def _refuse(self, reason: str) -> bool:
        """Count the operation under ``reason``; True only for ``send=False`` (PostHog returns the
        uuid of an event it did not send)."""
        count_drop(reason, counter=self.drops)
        if reason == "not_sent":
            return True
        if reason == "disabled":
            warn_limited(reason, "posthog_otel: disabled is set: operations are dropped (counted as 'disabled')",
                         level=logging.INFO)  # fmt: skip
        elif reason == "after_shutdown":
            warn_limited(reason, "posthog_otel: operation after the PostHog exporter shut down; dropped")
        elif reason == "otel_sdk_disabled":
            warn_sdk_disabled()
        else:
            warn_limited(reason, "posthog_otel: the PostHog exporter could not start (%s); operations are dropped",
                         self._failure or "no project API key: set POSTHOG_API_KEY")  # fmt: skip
        return False


def sdk_disabled() -> bool:
    """``OTEL_SDK_DISABLED=true``: the OpenTelemetry SDK hands out no-op providers and loggers."""
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def warn_sdk_disabled() -> None:
    warn_limited("otel_sdk_disabled", "posthog_otel: OTEL_SDK_DISABLED=true turns the OpenTelemetry SDK off, so no "
                 "PostHog operation can be sent; each is dropped and counted as 'otel_sdk_disabled'")  # fmt: skip


def _module_configures(provider: Any) -> bool:
    """PostHog's module style, ``posthog.api_key = 'phc_...'``: build the pipeline from the module's
    attributes when no PostHog exporter serves the operations yet (no provider at all, or the
    application's own provider, which then gets the PostHog processor)."""
    build = configure_from_attributes
    return build is not None and build(provider, emitter)


def module_target() -> _Emitter:
    """Where the module's operations write now: ``posthog_otel.default_client``'s emitter when one
    is set (``Operations.route``), else the module's own."""
    client = _state.default_client
    target: _Emitter = client._emitter if client is not None else emitter
    return target


#: ``_module.configure_from_attributes``, set by ``_module`` at its import (the package imports
#: it first): the emitter is below the module's attributes and does not import them.
configure_from_attributes: Optional[Callable[[Any, "_Emitter"], bool]] = None


def is_placeholder(provider: Any) -> bool:
    """True for the API's stand-ins (proxy before set-up, no-op), which drop records."""
    return type(provider).__name__ in ("ProxyLoggerProvider", "NoOpLoggerProvider")


emitter = _Emitter()
_state.at_fork(emitter.after_fork)
