"""``Posthog`` / ``Client``: PostHog's instance style, each on an OpenTelemetry pipeline of its own.

``posthog = Posthog('phc_...', host='https://eu.posthog.com')`` takes PostHog's constructor
options (and posthog-otel's settings by their own names) and builds what ``configure()``
builds, on a ``LoggerProvider`` that only this client writes to: its operations go to its
project, through its exporter, spool and retries, beside any other client's and the module's.
The module-level functions stay the main road; a client is for code written that way, and
for an application that sends to several projects.

An option posthog-otel cannot honour is refused with a ``ValueError`` naming it; an unknown
keyword is a ``TypeError`` with the nearest valid one (``_options``). Without a project key
(argument or ``POSTHOG_API_KEY``), as in PostHog's SDK, the client is disabled, and says so.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, TypeVar

from opentelemetry.sdk._logs import LoggerProvider

from . import _attributes, _context, _exceptions, _hooks, _options, _setup
from ._config import Settings, parse_callback, parse_hooks, parse_properties, redact
from ._emit import Operations
from ._emitter import _Emitter
from ._exporter import PostHogLogExporter, hooks_for
from ._log import logger

if TYPE_CHECKING:  # imported on the first flag call
    from ._flags.service import FlagService

F = TypeVar("F", bound=Callable[..., Any])


def _with_flags(module: str, name: str) -> Callable[..., Any]:
    """The module's flag call ``name`` (of ``posthog_otel._flags.<module>``), answered with this
    client's flag service. Imported on the first call: flags bring the evaluator, its regular
    expressions and asyncio, which a client that only sends operations should not pay for."""

    def method(self: "Client", *args: Any, **kwargs: Any) -> Any:
        function = getattr(importlib.import_module("posthog_otel._flags." + module), name)
        from ._flags.service import using

        with using(self._flags):
            return function(*args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = "PostHog's ``%s``, with this client's keys and definitions (see ``posthog_otel.%s``)." % (
        name,
        name,
    )
    return method


class Client(Operations):
    """A PostHog client: the operations, contexts, feature flags and lifecycle of PostHog's
    ``Client``, delivering to its own project through its own OpenTelemetry pipeline."""

    def __init__(self, project_api_key: Optional[str] = None, host: Optional[str] = None, **options: Any) -> None:
        given = _options.translate({"project_api_key": project_api_key, "host": host, **options}, "Posthog()",
                                   _setup.SETTINGS)  # fmt: skip
        super().__init__(_Emitter(module=False))
        self._settings_given = given.settings
        self._batch = given.batch
        _setup.check_batch(self._batch, "Posthog()")
        self._pipeline: Optional[_setup.Pipeline] = None
        self._exporter: Optional[PostHogLogExporter] = None
        self.settings = Settings.resolve(**{k: v for k, v in given.settings.items() if k not in _OBJECTS})
        #: before_send, on_error, super_properties: its own, kept while it is disabled too.
        self.hooks = hooks_for(self.settings, given.settings, None)
        self._flag_service_: Optional[FlagService] = None  # made on the first flag call (``_flags``)
        self._flag_lock = threading.Lock()
        # Options that are the process's, not the client's (logging, exception hooks and limits): a
        # client passing PostHog's default must not undo what another client or the module set.
        switches = {"disabled": False, "send": True, **{
            name: value for name, value in given.switches.items()
            if name not in _PROCESS_WIDE or not _options.is_default(name, value)
        }}  # fmt: skip
        if not self.settings.api_key:
            if not switches["disabled"]:
                logger.error("posthog_otel: Posthog() has no project API key (pass it, or set POSTHOG_API_KEY): "
                             "this client is disabled; its calls return None, counted as 'disabled'")  # fmt: skip
            switches["disabled"] = True
        if not switches["disabled"]:
            self._start()
        _attributes.apply_switches(self._emitter, switches, self._pipeline)
        if switches.get("sync_mode"):
            self._emitter.sync = self._sync

    def __repr__(self) -> str:
        return "%s(host=%r, api_key=%r)" % (type(self).__name__, self.settings.host, redact(self.settings.api_key))

    def _start(self) -> None:
        self._exporter = PostHogLogExporter(_emitter=self._emitter, _hooks=self.hooks, **self._settings_given)
        provider = LoggerProvider()  # only this client writes to it; shut down (flushed) at exit
        self._pipeline = _setup.build(provider, self._exporter, dict(self._batch))
        self._emitter.bind(provider)

    def _sync(self) -> None:
        if self._pipeline is not None:
            self._pipeline.flush(self.settings.timeout)

    def _flag_service(self) -> Any:
        return self._flags

    @property
    def _flags(self) -> FlagService:
        """This client's flag service, made on first use."""
        service = self._flag_service_
        if service is None:
            with self._flag_lock:
                service = self._flag_service_
                if service is None:
                    from ._flags.overrides import Overrides
                    from ._flags.service import FlagService

                    exporter = self._exporter
                    transport = exporter.transport if exporter is not None else self._settings_given.get("transport")
                    service = FlagService(self.settings, transport, capture=self.capture)
                    service.disabled = lambda: self._emitter.disabled
                    service.overrides = Overrides()  # override_feature_flags() on this client is its own
                    self._flag_service_ = service
        return service

    # --- PostHog's attributes that change behaviour while it runs ---------------------------

    @property
    def api_key(self) -> Optional[str]:
        return self.settings.api_key

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def disabled(self) -> bool:
        return self._emitter.disabled

    @disabled.setter
    def disabled(self, value: bool) -> None:
        if not value and self._pipeline is None:
            if not self.settings.api_key:
                logger.error("posthog_otel: this client has no project API key; it stays disabled")
                return
            self._start()
        self._emitter.switch_values(disabled=bool(value))

    @property
    def send(self) -> bool:
        return self._emitter.send

    @send.setter
    def send(self, value: bool) -> None:
        self._emitter.switch_values(send=bool(value))

    @property
    def sync_mode(self) -> bool:
        return self._emitter.sync is not None

    @sync_mode.setter
    def sync_mode(self, value: bool) -> None:
        self._emitter.sync = self._sync if value else None

    @property
    def before_send(self) -> Any:
        hooks = self.hooks.active()[0]
        return hooks[0] if len(hooks) == 1 else (list(hooks) or None)

    @before_send.setter
    def before_send(self, value: Any) -> None:
        self.hooks.before_send = parse_hooks(value) if value is not None else ()

    @property
    def on_error(self) -> Any:
        return next((layer.on_error for layer in self.hooks._layers() if layer.on_error is not None), None)

    @on_error.setter
    def on_error(self, value: Any) -> None:
        self.hooks.on_error = parse_callback(value) if value is not None else None

    @property
    def super_properties(self) -> Optional[Dict[str, Any]]:
        return self.hooks.active()[1]

    @super_properties.setter
    def super_properties(self, value: Any) -> None:
        self.hooks.super_properties = parse_properties(value) if value is not None else None

    @property
    def debug(self) -> bool:
        return logging.getLogger("posthog_otel").level == logging.DEBUG

    @debug.setter
    def debug(self, value: bool) -> None:
        _attributes.apply_switches(self._emitter, {"debug": bool(value)}, self._pipeline)

    # --- lifecycle ------------------------------------------------------------------------

    def flush(self, timeout_seconds: Optional[float] = 10) -> bool:
        """Deliver what this client emitted so far (PostHog's units: seconds; None: no limit).
        True when nothing is left waiting (delivered, or safe in the spool) in time."""
        if self._pipeline is None:
            return False
        return self._pipeline.flush(timeout_seconds)

    def shutdown(self) -> None:
        """Deliver while PostHog answers promptly, spool the rest, stop; later calls return None."""
        if _hooks.inside_callback("shutdown"):
            return
        if self._pipeline is not None:
            self._pipeline.shutdown()
            self._pipeline.logger_provider.shutdown()  # type: ignore[attr-defined]
        if self._flag_service_ is not None:
            self._flag_service_.stop()

    def join(self) -> None:
        """PostHog's ``join()``: deliver what is queued and stop (as ``shutdown``)."""
        self.shutdown()

    def stats(self) -> Dict[str, Any]:
        """What this client's exporter did (see ``PostHogLogExporter.stats``)."""
        return self._exporter.stats() if self._exporter is not None else {}

    # --- contexts (OpenTelemetry's context, shared by every client, as PostHog's are) ---------

    def new_context(self, fresh: bool = False, capture_exceptions: Optional[bool] = None) -> Any:
        """PostHog's ``client.new_context()``: a context whose escaping exception this client sends."""
        return _context.new_context(fresh, capture_exceptions, client=self)

    def scoped(self, fresh: bool = False, capture_exceptions: Optional[bool] = None) -> Callable[[F], F]:
        """PostHog's ``client.scoped()``: ``new_context`` of this client around each call."""
        return _context.scoped(fresh, capture_exceptions, client=self)

    identify_context = staticmethod(_context.identify_context)
    set_context_session = staticmethod(_context.set_context_session)
    set_context_device_id = staticmethod(_context.set_context_device_id)
    tag = staticmethod(_context.tag)
    get_tags = staticmethod(_context.get_tags)

    # --- feature flags, with this client's keys and definitions -----------------------------

    feature_enabled = _with_flags("api", "feature_enabled")
    get_feature_flag = _with_flags("api", "get_feature_flag")
    get_feature_flag_payload = _with_flags("api", "get_feature_flag_payload")
    get_all_flags = _with_flags("api", "get_all_flags")
    get_all_flags_and_payloads = _with_flags("api", "get_all_flags_and_payloads")
    evaluate_flags = _with_flags("api", "evaluate_flags")
    load_feature_flags = _with_flags("api", "load_feature_flags")
    feature_flag_definitions = _with_flags("api", "feature_flag_definitions")
    get_feature_flag_result = _with_flags("calls", "get_feature_flag_result")
    get_remote_config_payload = _with_flags("calls", "get_remote_config_payload")
    get_feature_flag_evaluation_runtime = _with_flags("calls", "get_feature_flag_evaluation_runtime")
    get_feature_flag_keys_by_evaluation_runtime = _with_flags("calls", "get_feature_flag_keys_by_evaluation_runtime")
    override_feature_flags = _with_flags("calls", "override_feature_flags")


class Posthog(Client):
    """PostHog's public name for ``Client``: the same class, the same options."""


_PROCESS_WIDE = frozenset({"debug"}) | _exceptions.OPTIONS

#: Settings that are objects, not values: the exporter takes them, ``Settings`` does not.
_OBJECTS = frozenset({"retry_policy", "transport"})
