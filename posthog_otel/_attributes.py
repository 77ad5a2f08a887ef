"""The options assigned on the module (``posthog_otel.api_key = ...``), as the rest reads them.

``_module`` checks and stores each assignment; ``configure()``, each ``Client`` and the feature
flags read them here, and ``apply_switches`` puts the switches into effect on an emitter. This
module is below all of them, so none of them imports ``_module``.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Optional, Tuple

from . import _emitter, _lifecycle, _log, _options, _state
from ._config import Settings
from ._exceptions import OPTIONS as _EXCEPTION_OPTIONS

#: Options assigned on the module with a value other than PostHog's default, by name.
assigned: Dict[str, Any] = {}
lock = threading.RLock()
#: Bumped whenever a pipeline option changes: the module's pipeline records the one it was built from.
_generation = 0

SWITCHES = frozenset({"disabled", "send", "debug", "sync_mode"}) | _EXCEPTION_OPTIONS
HOOKS = frozenset({"before_send", "on_error", "super_properties"})
FLAG_OPTIONS = frozenset({"api_key", "project_api_key", "host", "personal_api_key", "secret_key", "poll_interval",
                          "feature_flags_request_timeout_seconds", "feature_flags_request_max_retries",
                          "enable_local_evaluation", "disable_geoip"})  # fmt: skip


def switches(defaults: bool = False) -> Dict[str, Any]:
    """The switches assigned on the module (with PostHog's defaults for the others, if asked)."""
    values = {name: _options.BY_NAME[name].default for name in SWITCHES} if defaults else {}
    with lock:
        values.update({name: assigned[name] for name in SWITCHES if name in assigned})
    return values


def apply_switches(emitter: Any, values: Dict[str, Any], pipeline: Any) -> None:
    """``disabled``/``send`` on ``emitter``; ``debug`` (process-wide: the package's logger, and
    errors raised from calls, as PostHog's SDK does); ``sync_mode`` (each call flushes)."""
    if "disabled" in values or "send" in values:
        emitter.switch_values(values.get("disabled"), values.get("send"))
    if "debug" in values:
        _log.set_debug(bool(values["debug"]))
    if "sync_mode" in values:
        emitter.sync_mode = bool(values["sync_mode"])
        emitter.sync = _sync_flush(pipeline) if values["sync_mode"] else None
    errors = {name: value for name, value in values.items() if name in _EXCEPTION_OPTIONS}
    if errors:
        from . import _exceptions

        _exceptions.apply(errors, None if emitter is _emitter.emitter else emitter)


def _sync_flush(pipeline: Any) -> Any:
    """``sync_mode``: after each operation, flush the pipeline it went to (the module's current
    one when ``pipeline`` is None), so the call returns once PostHog has it."""

    def flush() -> None:
        target = pipeline if pipeline is not None else _state.pipeline
        if target is not None:
            target.flush()
        else:
            _lifecycle.flush_global()

    return flush


def pipeline_options() -> Dict[str, Any]:
    """The assigned options that configure the module's pipeline (not switches, not hooks)."""
    with lock:
        return {k: v for k, v in assigned.items() if k not in SWITCHES and k not in HOOKS}


def pipeline_settings() -> Dict[str, Any]:
    return _options.translate(pipeline_options(), "posthog_otel.").settings


def generation() -> int:
    return _generation


def next_generation() -> None:
    """A pipeline option changed (or every option was forgotten): the pipeline is out of date."""
    global _generation
    _generation += 1


def has_api_key() -> bool:
    with lock:
        return bool(assigned.get("project_api_key") or assigned.get("api_key"))


def flag_source() -> Optional[Tuple[Any, ...]]:
    """What identifies the flag configuration the module's attributes give (None without a key)."""
    if not has_api_key():
        return None
    with lock:
        return tuple(sorted((k, repr(v)) for k, v in assigned.items() if k in FLAG_OPTIONS))


def settings_from_attributes() -> Settings:
    """The module's options as settings (environment under them, as for ``configure()``)."""
    return Settings.resolve(**pipeline_settings())


@_state.at_fork
def after_fork() -> None:
    """In a forked child: a parent thread may have held the lock at the fork."""
    global lock
    lock = threading.RLock()
