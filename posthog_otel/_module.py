"""PostHog's style of set-up: options as module attributes (``posthog_otel.api_key = 'phc_...'``).

Every assignment on the package goes through ``assign`` (the package's module class calls it
from ``__setattr__``), so it is checked at once, as the line that makes it runs:

- a name that is neither an option of PostHog's SDK nor something the package already has
  (a typo: ``posthog.api_kye``) raises ``AttributeError`` with the nearest valid name;
- an option posthog-otel does not support raises ``ValueError`` unless given PostHog's
  default; an invalid value (a host that is no URL, swapped keys) raises ``ValueError``;
- the emit side's switches (``disabled``, ``send``, ``debug``, ``sync_mode``) and the hooks
  (``before_send``, ``on_error``, ``super_properties``) take effect at once, whatever set the
  pipeline up;
- the other options are options of the module's pipeline, as ``configure()``'s keywords are
  (its own keywords win). The first operation builds the pipeline from them when no PostHog
  exporter serves the operations yet, on the application's LoggerProvider if it has one; an
  option changed after that rebuilds the pipeline at the next call (the old one is flushed).
  Where a PostHog exporter set up another way serves the operations (``opentelemetry-
  instrument``, the application's own), such an option cannot reach it, and one line says so.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Dict, Tuple

from . import _attributes, _emit, _emitter, _hooks, _log, _options, _state
from ._config import Settings, redact
from ._exceptions import OPTIONS as _EXCEPTION_OPTIONS
from ._log import logger, warn_limited


def assign(module: types.ModuleType, name: str, value: Any) -> None:
    """Check (and apply) ``module.<name> = value`` before it is stored; raises to refuse it."""
    option = _options.MODULE_OPTIONS.get(name)
    if option is None:
        if name == "default_client":
            _route_to(value)
            return
        if name.startswith("_") or isinstance(value, types.ModuleType) or name in module.__dict__:
            return  # the package's own names (a submodule being imported, a test's monkeypatch)
        raise AttributeError(_options.unknown(name, "posthog_otel", _options.MODULE_OPTIONS))
    translated = _options.translate({name: value}, "posthog_otel.")  # raises for refused values
    if translated.settings:
        _check(translated.settings)
    with _attributes.lock:
        if value is None or _options.is_default(name, value):
            _attributes.assigned.pop(name, None)
        else:
            _attributes.assigned[name] = value
        if name in _attributes.SWITCHES:
            converted = translated.switches.get(name)
            _attributes.apply_switches(
                _emitter.emitter, {name: option.default if converted is None else converted}, pipeline=None
            )
        elif name in _attributes.HOOKS:
            _set_hook(name, translated.settings.get(name))
        elif option.target:
            _attributes.next_generation()
            _pipeline_option_changed(name)
    if name in _ROUTED:
        _apply_to_routed((name,))


def _check(settings: Dict[str, Any]) -> None:
    """Refuse a value the pipeline would refuse, now, on the assigning line."""
    checkable = {k: v for k, v in settings.items() if k not in ("before_send", "on_error", "super_properties")}
    merged = {**_attributes.pipeline_settings(), **checkable}
    Settings.resolve(environ={}, **merged)


def _set_hook(name: str, value: Any) -> None:
    """A hook, already checked and converted (None: unset). A pipeline given its own in code
    keeps it (code wins over module attributes): that is said, not left to be found out."""
    from ._exporter import live_log_exporters

    if value is not None and any(
        getattr(exporter.hooks, name) and exporter.hooks.fallback is _hooks.MODULE for exporter in live_log_exporters()
    ):
        warn_limited("module_hook_overruled:" + name, "posthog_otel: posthog_otel.%s is set, but the pipeline was "
                     "given its own %s in code (configure(%s=...)), which wins; pass it there instead", name, name, name)  # fmt: skip
    hooks = _hooks.MODULE
    if name == "before_send":
        hooks.before_send = value or ()
    elif name == "on_error":
        hooks.on_error = value
    else:
        hooks.super_properties = value


def configure_from_attributes(provider: Any, emitter: Any) -> bool:
    """Called by the module's first operation (and after an option changed): build (or rebuild)
    the module's pipeline from the attributes when they name a key and nothing else serves the
    operations. True when the operations now have a pipeline."""
    with _attributes.lock:  # the first calls of several threads at once build one pipeline, not one each
        return _configure_from_attributes(provider, emitter)


_emitter.configure_from_attributes = configure_from_attributes  # the module's first operation calls it


def _configure_from_attributes(provider: Any, emitter: Any) -> bool:
    from . import _setup

    current = _setup.current()
    if current is not None:
        if current.generation is not None and current.generation != _attributes.generation():
            return _rebuild(current)
        emitter.bind(current.logger_provider)  # configure() set it up (perhaps another thread, just now)
        return True
    if not _attributes.has_api_key():
        return False
    if not _emitter.is_placeholder(provider) and emitter.exporters > 0:
        _say_served_elsewhere("api_key")
        return False
    try:
        _setup.configure(logger_provider=None if _emitter.is_placeholder(provider) else provider)
    except (ValueError, TypeError) as error:
        emitter.exporter_failed("exporter_failed", str(error))
        warn_limited("module_configure", "%s", error)
        return False
    logger.info("posthog_otel: configured from posthog_otel.api_key%s",
                "" if _emitter.is_placeholder(provider) else " on the application's LoggerProvider")  # fmt: skip
    return True


def _rebuild(current: Any) -> bool:
    from . import _setup

    try:
        _setup.configure(**current.arguments)
    except (ValueError, TypeError) as error:
        warn_limited("module_configure", "%s", error)
        current.generation = _attributes.generation()  # keep serving with what it has; said above
        return False
    logger.info("posthog_otel: pipeline rebuilt after a posthog_otel option changed")
    return True


def _pipeline_option_changed(name: str) -> None:
    """An option of the module's pipeline changed: the next operation rebuilds it, or, when a
    pipeline set up another way serves the operations, one line says the option cannot reach it."""
    from . import _setup

    current = _setup.current()
    if current is not None and current.generation is not None:
        _emitter.emitter.ready = False  # the next operation rebuilds it
    elif _emitter.emitter.exporters > 0:
        _say_served_elsewhere(name)


def _say_served_elsewhere(name: str) -> None:
    from . import _setup

    current = _setup.current()
    if current is not None:
        how = "configure(exporter=...)"
    else:
        how = "opentelemetry-instrument or the application's own LoggerProvider"
    keys = ", ".join(sorted({redact(k) or "?" for k in _setup.live_keys()}))
    warn_limited("module_option:" + name, "posthog_otel: posthog_otel.%s is set, but the operations already go to a "
                 "PostHog exporter set up by %s (key %s), which it cannot change; configure that exporter instead",
                 name, how, keys or "?")  # fmt: skip


def _route_to(client: Any) -> None:
    """``posthog_otel.default_client = Posthog(...)``: the module's functions use that client."""
    from . import _posthog

    if client is not None and not isinstance(client, _posthog.Client):
        raise ValueError("posthog_otel.default_client takes a posthog_otel.Client (or Posthog), not %s"
                         % type(client).__name__)  # fmt: skip
    _emit.default.route(client)
    _apply_to_routed()


#: What PostHog's ``setup()`` applies to its default client on every module call, when set here.
_ROUTED = ("disabled", "debug", "before_send")


def _apply_to_routed(names: Tuple[str, ...] = ()) -> None:
    """The module's own options over the routed client's (PostHog's ``setup()`` sets the module's
    ``disabled``, ``debug`` and ``before_send`` on its default client): ``names`` just assigned
    (their value, or PostHog's default when reset), else, when a client is routed, those assigned."""
    client = _state.default_client
    if client is None:
        return
    with _attributes.lock:
        if names:
            values = {name: _attributes.assigned.get(name, _options.BY_NAME[name].default) for name in names}
        else:
            values = {name: _attributes.assigned[name] for name in _ROUTED if name in _attributes.assigned}
    for name, value in values.items():
        setattr(client, name, value)


def reset() -> None:
    """Forget every assigned option (for tests)."""
    package = sys.modules.get("posthog_otel")
    with _attributes.lock:
        had_debug = "debug" in _attributes.assigned
        if package is not None:  # the attributes read back as PostHog's defaults again
            for name in _attributes.assigned:
                package.__dict__[name] = _options.BY_NAME[name].default
            package.__dict__["default_client"] = None
        _attributes.assigned.clear()
        _attributes.next_generation()
        _hooks.MODULE.before_send, _hooks.MODULE.on_error, _hooks.MODULE.super_properties = (), None, None
    _emit.default.route(None)
    _attributes.apply_switches(_emitter.emitter, {"disabled": False, "send": True, "sync_mode": False}, None)
    from . import _exceptions

    _exceptions.apply({name: _options.BY_NAME[name].default for name in _EXCEPTION_OPTIONS})
    if had_debug:
        _log.set_debug(False)
