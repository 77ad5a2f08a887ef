"""PostHog's SDK options, one row each, and what posthog-otel does with every one.

A PostHog user changes one import; every option their code sets (a module attribute,
``Posthog(...)``/``Client(...)`` keywords, ``configure()`` keywords) must then either work
with PostHog's meaning, in PostHog's units, or be refused at once with a line that names it
and says what to do instead. This table is that promise, in one place: the module's
``__setattr__``, ``Client`` and ``configure`` all translate through ``translate``, and
README's "Coming from PostHog's SDK" table is checked against it by the test suite.

- ``HONOURED``: mapped onto a setting of ours (``target``), a batch processor option
  (``batch.<name>``) or a switch of the emit side (``switch.<name>``), converted to our units.
- ``REFUSED``: PostHog's default is accepted (it asks for nothing); any other value raises
  ``ValueError`` naming the option, with the reason and what to do instead.
- ``NO_EFFECT``: a tuning knob with no counterpart here, accepted with one line saying why.

Defaults that tune transport (``gzip``, ``flush_interval``, ``max_retries``, ``timeout``)
are posthog-otel's own unless the option is given: they are at least as safe (a 1 s batch
delay, a spool instead of three retries); defaults that change what is sent are PostHog's.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Dict, Iterable, NamedTuple, Tuple

from ._config import parse_callback, parse_hooks, parse_properties
from ._log import logger

HONOURED = "honoured"
REFUSED = "refused"
NO_EFFECT = "no effect"

UNSET: Any = object()  # an option not given


def _same(value: Any) -> Any:
    return value


def _milliseconds(seconds: Any) -> Any:
    if isinstance(seconds, bool) or not float(seconds) > 0 or float(seconds) == float("inf"):
        raise ValueError("expected a positive number of seconds")
    return float(seconds) * 1000.0


def _positive(count: Any) -> Any:
    if isinstance(count, bool) or int(count) != count or count < 1:
        raise ValueError("expected a positive whole number")
    return int(count)


def _flag(value: Any) -> Any:
    if not isinstance(value, (bool, int)):
        raise ValueError("expected true or false")
    return bool(value)


def _directory(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a directory path")
    return value


def _module_names(value: Any) -> Any:
    if isinstance(value, str) or not all(isinstance(name, str) and name for name in value):
        raise ValueError("expected a list of module names")
    return list(value)


def _count(value: Any) -> Any:
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError("expected a whole number, 0 or more")
    return int(value)


def _seconds(value: Any) -> Any:
    if isinstance(value, bool) or not float(value) > 0 or float(value) == float("inf"):
        raise ValueError("expected a positive number of seconds")
    return float(value)


def _attempts(retries: Any) -> Any:
    if isinstance(retries, bool) or int(retries) != retries:
        raise ValueError("expected a whole number")
    return max(int(retries), 0) + 1  # PostHog's SDK takes a negative count as 0


def _mode(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


class Option(NamedTuple):  # a tuple: the table is built at import, and dataclasses cost more there
    name: str
    default: Any  # PostHog 7.91.1's default: the module attribute's initial value
    status: str
    target: str = ""  # our setting, "batch.<option>", "switch.<name>", or "" for nothing to set
    convert: Callable[[Any], Any] = _same
    note: str = ""  # what it becomes here, or why it is refused
    module: bool = True  # a module attribute in PostHog's SDK (else a Client keyword only)


_VARIABLES = "tunes capture_exception_code_variables, which is refused: as in PostHog's SDK, no effect without it"
_AI = "PostHog's AI capture lane is not in posthog-otel; leave it unset"
_EMAIL = "PostHog's emails API is not in posthog-otel; leave it unset"
_CACHE = "shared flag caches are not supported: each process polls its own definitions; leave it unset"

OPTIONS: Tuple[Option, ...] = (
    Option("api_key", None, HONOURED, "api_key", note="the project API key (`POSTHOG_API_KEY`)"),
    Option("project_api_key", None, HONOURED, "api_key", note="PostHog's newer name of `api_key`; wins over it"),
    Option("host", None, HONOURED, "host", note="`POSTHOG_HOST`; app hosts map to ingestion hosts"),
    Option("personal_api_key", None, HONOURED, "personal_api_key", note="local flag evaluation"),
    Option("secret_key", None, HONOURED, "secret_key", note="the newer name of `personal_api_key`"),
    Option("debug", False, HONOURED, "switch.debug", note="DEBUG logs from `posthog_otel`; errors inside calls raise"),
    Option(
        "send", True, HONOURED, "switch.send", note="`False`: calls return a uuid, nothing is sent (counted `not_sent`)"
    ),
    Option(
        "disabled",
        False,
        HONOURED,
        "switch.disabled",
        note="`True`: calls return None, nothing is sent (counted `disabled`)",
    ),
    Option("sync_mode", False, HONOURED, "switch.sync_mode", note="each call returns once its event is delivered"),
    Option(
        "on_error",
        None,
        HONOURED,
        "on_error",
        parse_callback,
        note="`on_error(error, events)` on the exporter's thread",
    ),
    Option(
        "before_send",
        None,
        HONOURED,
        "before_send",
        parse_hooks,
        note="on the exporter's thread, before the spool; a list runs in order",
    ),
    Option(
        "super_properties",
        None,
        HONOURED,
        "super_properties",
        parse_properties,
        note="merged over every event's properties",
    ),
    Option("poll_interval", 30, HONOURED, "poll_interval", note="seconds between flag definition loads"),
    Option("disable_geoip", True, HONOURED, "disable_geoip"),
    Option("is_server", True, HONOURED, "is_server", note="`$is_server` on every event"),
    Option(
        "feature_flags_request_timeout_seconds",
        3,
        HONOURED,
        "flags_timeout",
        note="the whole read's bound, retries included",
    ),
    Option("feature_flags_request_max_retries", 1, HONOURED, "flags_max_retries"),
    Option("enable_local_evaluation", True, HONOURED, "local_evaluation"),
    Option(
        "capture_mode",
        None,
        HONOURED,
        "capture_mode",
        _mode,
        note="`v0`/`CaptureMode.V0` is `/batch/`, `v1` Capture V1",
    ),
    Option(
        "capture_trace_context",
        None,
        HONOURED,
        "trace_context",
        note="`$trace_id`/`$span_id`: on by default here (an OTel span is always at hand); `False` turns it off",
    ),
    Option(
        "privacy_mode",
        False,
        HONOURED,
        "",
        note="for PostHog's AI wrappers: posthog-otel has none, and sends no prompts or outputs",
    ),
    Option(
        "max_queue_size",
        10000,
        HONOURED,
        "batch.max_queue_size",
        _positive,
        module=False,
        note="the OTel batch processor's queue",
    ),
    Option(
        "flush_at",
        100,
        HONOURED,
        "batch.max_export_batch_size",
        _positive,
        module=False,
        note="the OTel batch processor's batch size",
    ),
    Option(
        "flush_interval",
        5.0,
        HONOURED,
        "batch.schedule_delay_millis",
        _milliseconds,
        module=False,
        note="seconds; the OTel batch processor's delay (1 s here unless given)",
    ),
    Option("gzip", False, HONOURED, "gzip", module=False, note="on here unless given"),
    Option(
        "max_retries",
        3,
        HONOURED,
        "max_attempts",
        _attempts,
        module=False,
        note="retries with the spool off; with it on (the default), undelivered events wait on disk",
    ),
    Option("timeout", 15, HONOURED, "timeout", module=False, note="seconds per request (10 here unless given)"),
    Option("historical_migration", False, HONOURED, "historical_migration", module=False),
    Option(
        "capture_compression",
        None,
        HONOURED,
        "capture_compression",
        _mode,
        module=False,
        note="Capture V1's codec: `gzip`, `deflate`, `zstd` (`posthog-otel[zstd]`) or `none`; `/batch/` follows `gzip`",
    ),
    Option(
        "thread",
        1,
        NO_EFFECT,
        module=False,
        note="one sender per exporter keeps each person's operations in order; it sends bigger batches instead",
    ),
    Option(
        "enable_exception_autocapture",
        False,
        HONOURED,
        "switch.enable_exception_autocapture",
        _flag,
        note="uncaught exceptions (main thread and threads) to error tracking",
    ),
    Option(
        "log_captured_exceptions",
        False,
        HONOURED,
        "switch.log_captured_exceptions",
        _flag,
        note="each captured exception is logged too",
    ),
    Option("project_root", None, HONOURED, "switch.project_root", _directory, note="frames under it are in-app"),
    Option(
        "in_app_modules",
        None,
        HONOURED,
        "switch.in_app_modules",
        _module_names,
        note="frames of these modules are in-app",
    ),
    Option(
        "enable_exception_autocapture_rate_limiting",
        False,
        HONOURED,
        "",
        note="rate limiting is always on here (per type and place, every road), so either value is met",
    ),
    Option("exception_autocapture_bucket_size", 50, HONOURED, "switch.exception_autocapture_bucket_size", _count),
    Option("exception_autocapture_refill_rate", 10, HONOURED, "switch.exception_autocapture_refill_rate", _count),
    Option(
        "exception_autocapture_refill_interval_seconds",
        10,
        HONOURED,
        "switch.exception_autocapture_refill_interval_seconds",
        _seconds,
    ),
    Option(
        "capture_exception_code_variables",
        False,
        REFUSED,
        note="local variables are not captured on stack frames yet; leave it unset",
    ),
    Option("code_variables_mask_patterns", None, HONOURED, "", note=_VARIABLES),
    Option("code_variables_ignore_patterns", None, HONOURED, "", note=_VARIABLES),
    Option("code_variables_mask_url_credentials", None, HONOURED, "", note=_VARIABLES),
    Option("code_variables_detect_secrets", None, HONOURED, "", note=_VARIABLES),
    Option("metrics", None, REFUSED, note="send metrics with OpenTelemetry's MeterProvider and an OTLP exporter"),
    Option(
        "traces",
        None,
        REFUSED,
        note="trace with OpenTelemetry's TracerProvider; `PostHogSpanExporter` reads `posthog.*` span events",
    ),
    Option("flag_fallback_cache_url", None, REFUSED, module=False, note=_CACHE),
    Option("flag_definition_cache_provider", None, REFUSED, note=_CACHE),
    Option("enable_full_ai_capture", False, REFUSED, note=_AI),
    Option("_use_ai_lane", False, REFUSED, note=_AI),
    Option("_enable_multimodal_capture", False, REFUSED, note=_AI),
    Option("app_host", None, REFUSED, module=False, note=_EMAIL),
    Option("email_request_timeout_seconds", 15, REFUSED, module=False, note=_EMAIL),
    Option("email_request_max_retries", 2, REFUSED, module=False, note=_EMAIL),
    Option("migrated_from", None, REFUSED, module=False, note=_EMAIL),
)

BY_NAME: Dict[str, Option] = {option.name: option for option in OPTIONS}
MODULE_OPTIONS: Dict[str, Option] = {o.name: o for o in OPTIONS if o.module}


class Translated:
    """Options in our terms: exporter settings, batch processor options, emit-side switches."""

    def __init__(self) -> None:
        self.settings: Dict[str, Any] = {}
        self.batch: Dict[str, Any] = {}
        self.switches: Dict[str, Any] = {}


def translate(given: Dict[str, Any], where: str, ours: Iterable[str] = ()) -> Translated:
    """PostHog's options (and, by their own names, ``ours``: settings of posthog-otel) in our
    terms. Unknown names raise ``TypeError`` with the nearest valid one; refused values raise
    ``ValueError`` saying why; each ``NO_EFFECT`` option given is said once."""
    ours = frozenset(ours)
    out = Translated()
    for name in ("api_key", "project_api_key"):  # project_api_key wins, as in PostHog's SDK
        key = given.get(name)
        if key is not None and key is not UNSET and not (isinstance(key, str) and not key.strip()):
            out.settings["api_key"] = key  # a blank key is no key, as in PostHog's SDK
    for name, value in given.items():
        if value is UNSET or name in ("api_key", "project_api_key"):
            continue
        option = BY_NAME.get(name)
        if option is None:
            if name in ours:
                out.settings[name] = value
                continue
            raise TypeError(unknown(name, where, list(BY_NAME) + sorted(ours)))
        apply(option, value, out, where)
    return out


def apply(option: Option, value: Any, out: Translated, where: str) -> None:
    if option.status == REFUSED:
        if not _is_default(option, value):  # the value is not shown: a cache URL may hold a password
            raise ValueError("posthog_otel: %s is not supported (a %s was given): %s"
                             % (_label(where, option.name), type(value).__name__, option.note))  # fmt: skip
        return
    if option.status == NO_EFFECT:
        if not _is_default(option, value):
            logger.warning(
                "posthog_otel: %s=%s has no effect: %s", _label(where, option.name), _shown(value), option.note
            )
        return
    if not option.target or value is None and option.target.startswith("batch."):
        return
    try:
        converted = option.convert(value) if value is not None else None
    except (TypeError, ValueError, OverflowError) as error:  # int(inf) overflows
        raise ValueError("posthog_otel: %s=%s: %s" % (_label(where, option.name), _shown(value), error)) from None
    kind, _, name = option.target.rpartition(".")
    if kind == "batch":
        out.batch[name] = converted
    elif kind == "switch":
        out.switches[name] = converted
    elif converted is not None:
        out.settings[option.target] = converted


def unknown(name: str, where: str, valid: Iterable[str]) -> str:
    import difflib  # on this error path only

    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    hint = "did you mean %s?" % close[0] if close else "README's 'Coming from PostHog's SDK' lists them all"
    return "posthog_otel: %s has no option %r (%s)" % (where.rstrip("."), name, hint)


def _label(where: str, name: str) -> str:
    """``posthog_otel.host`` for a module attribute, ``Posthog() host`` for a keyword."""
    return where + name if where.endswith(".") else "%s %s" % (where, name)


def is_default(name: str, value: Any) -> bool:
    """Whether ``value`` is PostHog's default for option ``name`` (None counts as the default)."""
    return _is_default(BY_NAME[name], value)


def _is_default(option: Option, value: Any) -> bool:
    try:
        return value is None or bool(value == option.default)
    except Exception:  # an object whose comparison fails is not the default
        return False


def _shown(value: Any) -> str:
    """A value in an error message: never a key, never a long repr."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
