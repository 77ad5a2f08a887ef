"""The flag service of the current configuration: definitions, ``/flags``, the event store.

Which PostHog project and keys flags use follows the rest of the package:
``posthog_otel.api_key`` (and ``host``, ``personal_api_key``, ``secret_key``) when set,
else the configured pipeline's settings, else the environment. The service is built on
first use and kept while that configuration stays the same; a new configuration gets a
new service (the old poller stops).

With a personal API key (``personal_api_key`` or its newer name ``secret_key``) and
``local_evaluation`` on, definitions are polled and flags are evaluated here. A flag read
started before the first load has finished waits for it, within the read's one deadline
(``flags_timeout``, which also bounds asking ``/flags`` for what is left), so that it too is
answered locally. Once one read has waited in vain, later reads stop waiting for that load:
a PostHog that does not answer costs each read at most ``flags_timeout``, never twice.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import time
from typing import Any, Callable, Iterator, NamedTuple, Optional, Tuple

from .. import _attributes, _emitter, _state
from .._config import Settings
from .._delivery.http import Transport
from .._log import logger, warn_limited
from .definitions import Definitions
from .events import CalledEvents
from .http import FlagsHttp
from .overrides import MODULE_OVERRIDES, Overrides
from .poller import DefinitionsPoller

_ENVIRONMENT = (
    "POSTHOG_API_KEY", "POSTHOG_PROJECT_API_KEY", "POSTHOG_HOST", "POSTHOG_PERSONAL_API_KEY", "POSTHOG_SECRET_KEY",
    "POSTHOG_OTEL_POLL_INTERVAL", "POSTHOG_OTEL_LOCAL_EVALUATION", "POSTHOG_OTEL_DISABLE_GEOIP",
)  # fmt: skip


class FlagService:
    def __init__(
        self, settings: Settings, transport: Optional[Transport] = None, capture: Optional[Callable[..., Any]] = None
    ) -> None:
        self.settings = settings
        #: The exporter's transport (``transport=`` included) when there is one: flags go the same way.
        self.http = FlagsHttp(transport)
        self.events = CalledEvents()
        #: How ``$feature_flag_called`` is captured: the module's ``capture``, or a Client's.
        self.capture = capture
        #: Whether flag calls answer nothing (PostHog's ``disabled``): the module's or a Client's.
        self.disabled: Callable[[], bool] = _module_disabled
        self.poller: Optional[DefinitionsPoller] = None
        #: The answers set for tests (``override_feature_flags``): the module's, or a Client's own.
        self.overrides: Overrides = MODULE_OVERRIDES
        self._waited_out = False  # a read waited for the first load until its deadline, in vain
        key = personal_key(settings)
        if key and settings.local_evaluation and settings.api_key:
            self.poller = DefinitionsPoller(settings.host, settings.api_key, key, settings.poll_interval, self.http)

    def __repr__(self) -> str:
        return "FlagService(host=%r, local=%s)" % (self.settings.host, self.poller is not None)

    def definitions(self) -> Optional[Definitions]:
        """What is loaded now (None: nothing yet, or no local evaluation); never waits."""
        poller = self.poller
        if poller is None:
            return None
        poller.ensure_running()
        return poller.definitions

    def first_load_pending(self) -> bool:
        """True while the very first load is under way and no read has yet waited for it in vain."""
        poller = self.poller
        return poller is not None and poller.definitions is None and not poller.answered and not self._waited_out

    def wait_for_first_load(self, deadline: Optional[float] = None) -> Optional[Definitions]:
        """The definitions, once the first load has answered or ``deadline`` (monotonic) has come."""
        if self.poller is not None:
            self.poller.ensure_running()
            left = self.settings.flags_timeout if deadline is None else deadline - time.monotonic()
            if not self.poller.wait_for_first_answer(max(left, 0.0)):
                self._waited_out = True
        return self.definitions()

    def load(self) -> bool:
        """Load now, waiting at most ``flags_timeout``; True when definitions are loaded. The
        request is the poller's: one that PostHog does not answer goes on in the background."""
        if self.poller is None:
            return False
        self.poller.poll_soon(self.settings.flags_timeout)
        return bool(self.poller.definitions is not None and not self.poller.definitions.empty)

    def stop(self) -> None:
        if self.poller is not None:
            self.poller.stop()


def personal_key(settings: Settings) -> Optional[str]:
    """``secret_key`` if set (the newer name), else ``personal_api_key``."""
    if settings.secret_key and settings.personal_api_key and settings.secret_key != settings.personal_api_key:
        warn_limited("flags:two_keys", "posthog_otel: both secret_key and personal_api_key are set; using secret_key")
    return settings.secret_key or settings.personal_api_key


# --- the current service ------------------------------------------------------------------

_lock = threading.Lock()
_current: Optional[Tuple[Any, FlagService]] = None


_using: "contextvars.ContextVar[Optional[FlagService]]" = contextvars.ContextVar("posthog_otel.flags", default=None)


@contextlib.contextmanager
def using(service: Optional[FlagService]) -> Iterator[None]:
    """Flag calls inside use ``service`` (a ``Client``'s) instead of the module's; None: no change."""
    if service is None:
        yield
        return
    token = _using.set(service)
    try:
        yield
    finally:
        _using.reset(token)


def overrides_in_effect() -> Overrides:
    """The overrides of the flag calls here: a Client's (inside its calls), else the module's."""
    chosen = _using.get()
    return chosen.overrides if chosen is not None else MODULE_OVERRIDES


def service_in_use() -> Optional[FlagService]:
    """The service the flag calls here would use, if one is built already (never builds one)."""
    chosen = _using.get()
    if chosen is not None:
        return chosen
    current = _current
    return current[1] if current is not None else None


def calls_disabled() -> bool:
    """PostHog's ``disabled`` for the flag calls here: a Client's, else the module's."""
    chosen = _using.get()
    return chosen.disabled() if chosen is not None else _module_disabled()


def _module_disabled() -> bool:
    return _emitter.emitter.blocked == "disabled"


def current_service() -> Optional[FlagService]:
    """The service for the configuration in effect; None (with a warning) without a project key."""
    chosen = _using.get()
    if chosen is not None:
        return chosen
    routed = _state.default_client  # posthog_otel.default_client = Posthog(...): its flags, as its operations
    if routed is not None:
        service: FlagService = routed._flags
        return service
    source = _source()
    current = _current
    if current is not None and (current[0] is source or current[0] == source):
        return current[1]
    return _replace(source)


def _source() -> Any:
    """What identifies the configuration in effect, cheaply (this runs on every flag read)."""
    attributes = _attributes.flag_source()
    if attributes is not None:
        return ("module", attributes) + _environment()
    pipeline = _state.pipeline
    if pipeline is not None:
        exporter = pipeline.exporter
        return _Exported(exporter.settings, exporter.transport)
    return ("environment",) + _environment()


def _environment() -> Tuple[Optional[str], ...]:
    environ = os.environ
    return tuple(environ.get(name) for name in _ENVIRONMENT)


def _replace(source: Any) -> Optional[FlagService]:
    global _current
    with _lock:
        current = _current
        if current is not None and (current[0] is source or current[0] == source):
            return current[1]
        settings = _settings_of(source)
        if settings is None:
            return None
        service = FlagService(settings, source.transport if isinstance(source, _Exported) else None)
        _current = (source, service)
    if current is not None:
        current[1].stop()
    logger.debug("posthog_otel: flags use %r", service)
    return service


class _Exported(NamedTuple):
    """The configured pipeline's exporter as flags see it: its settings and its transport."""

    settings: Settings
    transport: Transport


def _settings_of(source: Any) -> Optional[Settings]:
    if isinstance(source, _Exported):
        return source.settings
    try:
        if source[0] == "module":
            return _attributes.settings_from_attributes()
        settings = Settings.resolve()
    except ValueError as error:
        warn_limited("flags:settings", "%s", error)
        return None
    if not settings.api_key:
        warn_limited("flag:no_key", "posthog_otel: feature flags need a project API key: set POSTHOG_API_KEY")
        return None
    return settings


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork


_state.at_fork(_after_fork_in_child)


def reset() -> None:
    """Forget the current service (its poller stops); for tests and reconfiguration."""
    global _current
    with _lock:
        current, _current = _current, None
    if current is not None:
        current[1].stop()
