"""The settings table.  Each setting is declared once, as a field of ``Settings``.

Precedence is explicit argument > environment > default.  A bad explicit argument is a
programming error and raises ``ValueError`` naming the setting; a bad environment value
is logged (naming the variable) and the default is used, because an exporter built by
``opentelemetry-instrument`` has no caller to raise to.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
from typing import Any, Callable, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from ._log import logger, warn_limited

DEFAULT_HOST = "https://us.i.posthog.com"

#: Settings that hold a key: shown only redacted, in reprs, errors and log lines.
SECRET_SETTINGS = frozenset({"api_key", "personal_api_key", "secret_key"})

#: PostHog app hosts and the ingestion hosts they stand for (as PostHog's SDK maps them).
APP_HOSTS = {
    "https://app.posthog.com": "https://us.i.posthog.com",
    "https://us.posthog.com": "https://us.i.posthog.com",
    "https://eu.posthog.com": "https://eu.i.posthog.com",
}


def parse_bool(text: Any) -> bool:
    if isinstance(text, bool):
        return text
    if not isinstance(text, str):
        raise ValueError("expected true or false")
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def parse_seconds(text: Any) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("expected a positive number of seconds")
    return value


def parse_retries(text: Any) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("expected 0 or more")
    return value


def parse_count(text: Any) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected a positive whole number")
    return value


def parse_key(text: Any) -> str:
    if not isinstance(text, str):
        raise ValueError("expected a string")
    value = text.strip()
    if not value:
        raise ValueError("is empty")
    return value


def parse_host(text: Any) -> str:
    """A PostHog host as a URL. A host without a scheme (``eu.i.posthog.com``) keeps its region:
    it gets ``https://`` (``http://`` for a loopback name, where the local PostHog listens), and
    one line says so; it never falls back to another host."""
    if not isinstance(text, str):
        raise ValueError("expected a URL string")
    value = text.strip().rstrip("/")
    if value and "://" not in value:
        name = urlsplit("//" + value).hostname or ""
        value = ("http://" if _is_loopback_name(name) else "https://") + value
        warn_limited("host_scheme:" + value, "posthog_otel: the host %r has no scheme; using %s", text.strip(), value)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or not parts.hostname or " " in value:
        raise ValueError("expected an http:// or https:// URL")
    return APP_HOSTS.get(value, value)


def parse_capture_mode(text: Any) -> str:
    value = str(text).strip().lower()
    if value in ("batch", "v0", "legacy"):
        return "batch"
    if value in ("v1", "analytics_v1"):
        return "v1"
    raise ValueError("expected batch or v1")


def parse_compression(text: Any) -> str:
    """Capture V1's codec; PostHog's ``CaptureCompression`` members are taken by their value."""
    value = str(getattr(text, "value", text)).strip().lower()
    value = "none" if value == "identity" else value
    if value not in ("gzip", "deflate", "zstd", "none"):
        raise ValueError("expected gzip, deflate, zstd or none")
    from ._delivery.encoding import zstd_compressor  # on this path only: _encoding is the exporter's

    if value == "zstd" and zstd_compressor() is None:
        raise ValueError("zstd needs the zstandard package: pip install 'posthog-otel[zstd]'")
    return value


def parse_path(text: Any) -> str:
    value = str(text).strip()
    if not value:
        raise ValueError("is empty")
    return os.path.expanduser(value)


def parse_hooks(value: Any) -> Tuple[Callable[..., Any], ...]:
    """``before_send``: one callable or a list of them (applied in order); from the environment,
    ``module:function`` names, comma-separated."""
    if isinstance(value, str):
        return tuple(_import_callable(name) for name in value.split(",") if name.strip())
    hooks = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    for hook in hooks:
        if not callable(hook):
            raise ValueError("expected a callable or a list of callables, not %s" % type(hook).__name__)
    return hooks


def parse_callback(value: object) -> Callable[..., Any]:
    """``on_error``: a callable; from the environment, a ``module:function`` name."""
    if isinstance(value, str):
        return _import_callable(value)
    if not callable(value):
        raise ValueError("expected a callable, not %s" % type(value).__name__)
    return value


def _import_callable(name: str) -> Callable[..., Any]:
    module_name, _, attribute = name.strip().partition(":")
    if not module_name or not attribute:
        raise ValueError("expected module:function, not %r" % name.strip())
    try:
        found: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except Exception as error:  # an import error, a missing name: said with the name asked for
        raise ValueError("cannot import %s (%s: %s)" % (name.strip(), type(error).__name__, error)) from None
    if not callable(found):
        raise ValueError("%s is not callable" % name.strip())
    return found


def parse_properties(value: Any) -> Dict[str, Any]:
    """``super_properties``: a map of properties; from the environment, a JSON object."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("expected a JSON object") from None
    if not isinstance(value, Mapping):
        raise ValueError("expected a map of properties, not %s" % type(value).__name__)
    return {str(key): item for key, item in value.items()}


def setting(default: Any, *env: str, parse: Callable[[Any], Any], doc: str, fatal: bool = False) -> Any:
    """One setting. ``fatal``: a bad environment value is an error, not a warning and the default
    (for settings whose default would send data somewhere else: the key, the host)."""
    return dataclasses.field(
        default=default, hash=False, metadata={"env": env, "parse": parse, "doc": doc, "fatal": fatal}
    )


@dataclasses.dataclass(frozen=True)
class Settings:
    """Resolved exporter settings.  ``repr`` never shows the API key."""

    api_key: Optional[str] = setting(
        None,
        "POSTHOG_API_KEY",
        "POSTHOG_PROJECT_API_KEY",
        parse=parse_key,
        doc="PostHog project API key (`phc_...`). Required.",
        fatal=True,
    )
    host: str = setting(
        DEFAULT_HOST,
        "POSTHOG_HOST",
        parse=parse_host,
        doc="PostHog ingestion host. App hosts (`https://eu.posthog.com`...) map to their ingestion host; "
        "a host without a scheme gets `https://` (`http://` for loopback).",
        fatal=True,
    )
    timeout: float = setting(
        10.0,
        "POSTHOG_OTEL_TIMEOUT",
        parse=parse_seconds,
        doc="Seconds to wait for PostHog's answer to one request (on the exporter's own thread).",
    )
    max_attempts: int = setting(
        6,
        "POSTHOG_OTEL_MAX_ATTEMPTS",
        parse=parse_count,
        doc="Attempts per request when the spool is off (the first one included); with the spool on, "
        "undelivered events wait there instead.",
    )
    gzip: bool = setting(
        True,
        "POSTHOG_OTEL_GZIP",
        parse=parse_bool,
        doc="Compress request bodies with gzip.",
    )
    disable_geoip: bool = setting(
        True,
        "POSTHOG_OTEL_DISABLE_GEOIP",
        parse=parse_bool,
        doc="Default for operations that do not pass `disable_geoip` (server-side IPs are not the user's).",
    )
    historical_migration: bool = setting(
        False,
        "POSTHOG_OTEL_HISTORICAL_MIGRATION",
        parse=parse_bool,
        doc="Mark batches as a historical import (PostHog routes them to its slower, unthrottled lane).",
    )

    capture_mode: str = setting(
        "batch",
        "POSTHOG_OTEL_CAPTURE_MODE",
        parse=parse_capture_mode,
        doc="`batch` (PostHog's `/batch/` endpoint) or `v1` (Capture V1: per-event results, only `retry` events resent).",
    )
    capture_compression: Optional[str] = setting(
        None,
        "POSTHOG_OTEL_CAPTURE_COMPRESSION",
        parse=parse_compression,
        doc="Capture V1's request compression (PostHog's `capture_compression`): `gzip`, `deflate`, `zstd` "
        "(with the `zstd` extra, or Python 3.14) or `none`; unset, it follows `gzip`. `/batch/` always follows `gzip`.",
    )
    spool: bool = setting(
        True,
        "POSTHOG_OTEL_SPOOL",
        parse=parse_bool,
        doc="Keep events PostHog could not take yet on disk and send them, in order, when it answers again.",
    )
    spool_dir: Optional[str] = setting(
        None,
        "POSTHOG_OTEL_SPOOL_DIR",
        parse=parse_path,
        doc="Spool location; a private per-user directory by default. One subdirectory per project key and host.",
    )
    spool_max_bytes: int = setting(
        100 * 1024 * 1024,
        "POSTHOG_OTEL_SPOOL_MAX_BYTES",
        parse=parse_count,
        doc="Spool size cap; past it the oldest batches are dropped (counted and logged).",
    )
    spool_max_age: float = setting(
        7 * 24 * 3600.0,
        "POSTHOG_OTEL_SPOOL_MAX_AGE",
        parse=parse_seconds,
        doc="Seconds a batch may wait in the spool before it is dropped (counted and logged).",
    )
    spool_after: float = setting(
        1.0,
        "POSTHOG_OTEL_SPOOL_AFTER",
        parse=parse_seconds,
        doc="Seconds an operation may wait in memory for PostHog before it is written to the spool "
        "(when the spool is on): what a SIGKILL can lose, beyond the OTel batch processor's delay.",
    )
    exit_timeout: float = setting(
        10.0,
        "POSTHOG_OTEL_EXIT_TIMEOUT",
        parse=parse_seconds,
        doc="Seconds exit (and `shutdown()`, SIGTERM) may spend delivering while PostHog takes each request "
        "within a second: the budget grows with each batch taken, up to this; what is left waits in the spool "
        "for the next process. Exit stops sooner, about a second after PostHog stops answering.",
    )
    handle_sigterm: bool = setting(
        True,
        "POSTHOG_OTEL_HANDLE_SIGTERM",
        parse=parse_bool,
        doc="If SIGTERM has no handler, deliver or spool what is queued, then let the signal end the "
        "process as it would have.",
    )
    personal_api_key: Optional[str] = setting(
        None,
        "POSTHOG_PERSONAL_API_KEY",
        parse=parse_key,
        doc="Personal API key (`phx_...`) with feature flag read access: turns on local flag evaluation.",
    )
    secret_key: Optional[str] = setting(
        None,
        "POSTHOG_SECRET_KEY",
        parse=parse_key,
        doc="The newer name of `personal_api_key` (a personal or project secret key); wins when both are set.",
    )
    poll_interval: float = setting(
        30.0,
        "POSTHOG_OTEL_POLL_INTERVAL",
        parse=parse_seconds,
        doc="Seconds between two loads of the flag definitions (with `If-None-Match`: unchanged costs a 304).",
    )
    local_evaluation: bool = setting(
        True,
        "POSTHOG_OTEL_LOCAL_EVALUATION",
        parse=parse_bool,
        doc="Evaluate flags locally when a personal key is set; `false` asks PostHog's `/flags` for every flag.",
    )

    flags_timeout: float = setting(
        3.0,
        "POSTHOG_OTEL_FLAGS_TIMEOUT",
        parse=parse_seconds,
        doc="Seconds one `/flags` request may take, and the first flag read's wait for definitions "
        "(PostHog's `feature_flags_request_timeout_seconds`).",
    )
    flags_max_retries: int = setting(
        1,
        "POSTHOG_OTEL_FLAGS_MAX_RETRIES",
        parse=parse_retries,
        doc="Retries of a `/flags` request after a network failure, a timeout or a 502/503/504, each "
        "after a short pause (PostHog's `feature_flags_request_max_retries`); 0 turns them off.",
    )
    is_server: bool = setting(
        True,
        "POSTHOG_OTEL_IS_SERVER",
        parse=parse_bool,
        doc="Mark events `$is_server` (PostHog's `is_server`); `false` for a CLI or desktop program.",
    )
    trace_context: bool = setting(
        True,
        "POSTHOG_OTEL_TRACE_CONTEXT",
        parse=parse_bool,
        doc="Add `$trace_id`/`$span_id` of the span an operation was emitted in (PostHog's "
        "`capture_trace_context`, which defaults to off there).",
    )
    super_properties: Optional[Dict[str, Any]] = setting(
        None,
        "POSTHOG_OTEL_SUPER_PROPERTIES",
        parse=parse_properties,
        doc="Properties merged into every event, over the operation's own (PostHog's "
        "`super_properties`); from the environment, a JSON object.",
    )
    before_send: Tuple[Callable[..., Any], ...] = setting(
        (),
        "POSTHOG_OTEL_BEFORE_SEND",
        parse=parse_hooks,
        doc="A function (or a list, applied in order) given each PostHog event before it is written to "
        "the spool or sent; it returns the event, changed or not, or None to drop it (counted). From the "
        "environment, `module:function` names, comma-separated.",
    )
    on_error: Optional[Callable[..., Any]] = setting(
        None,
        "POSTHOG_OTEL_ON_ERROR",
        parse=parse_callback,
        doc="Called as `on_error(error, events)` on the exporter's thread when PostHog refuses events "
        "for good or they are dropped undelivered. From the environment, a `module:function` name.",
    )

    propagate_identity: bool = setting(
        False,
        "POSTHOG_OTEL_PROPAGATE_IDENTITY",
        parse=parse_bool,
        doc="Carry the context's distinct id and session id to other services in W3C baggage, and use "
        "incoming baggage's for operations without a person. Off: baggage travels in request headers, "
        "and a caller could name any person. Read where operations are emitted.",
    )
    flag_evaluation_events: bool = setting(
        False,
        "POSTHOG_OTEL_FLAG_EVALUATION_EVENTS",
        parse=parse_bool,
        doc="Each flag read adds OpenTelemetry's `feature_flag.evaluation` event (key, value, variant, "
        "reason, provider, error) to the current span.",
    )
    context_attributes: bool = setting(
        False,
        "POSTHOG_OTEL_CONTEXT_ATTRIBUTES",
        parse=parse_bool,
        doc="Put the context's person and session on every span and log record the application emits "
        "(`posthogDistinctId`, `user.id`, `posthog.distinct_id`, `sessionId`, `session.id`, `$session_id`): "
        "the global TracerProvider and LoggerProvider get PostHog's context processors.",
    )
    context_attribute_tags: bool = setting(
        False,
        "POSTHOG_OTEL_CONTEXT_ATTRIBUTE_TAGS",
        parse=parse_bool,
        doc="With `context_attributes`, the context's tags too.",
    )
    capture_exceptions: bool = setting(
        False,
        "POSTHOG_OTEL_CAPTURE_EXCEPTIONS",
        parse=parse_bool,
        doc="Turn OpenTelemetry's own exception records into PostHog `$exception` events: `exception` span "
        "events (span exporter) and log records with `exception.*` attributes (log exporter, gateway).",
    )

    def __repr__(self) -> str:
        shown = ", ".join(
            "%s=%r" % (f.name, redact(v) if f.name in SECRET_SETTINGS else v)
            for f in dataclasses.fields(self)
            for v in (getattr(self, f.name),)
        )
        return "Settings(%s)" % shown

    @classmethod
    def resolve(cls, environ: Optional[Mapping[str, str]] = None, **arguments: Any) -> "Settings":
        """Build settings from keyword arguments (None = not given), the environment, defaults.

        While ``posthog_otel.testing`` runs a local PostHog, it wins over all of them: whatever
        the application under test configures goes there, never to a real project."""
        environ = os.environ if environ is None else environ
        if REDIRECT is not None:
            arguments = _redirected(arguments)
        resolved = cls(**_values(dataclasses.fields(cls), arguments, environ))
        _check_keys(resolved)
        return resolved

    @classmethod
    def table(cls) -> Tuple[Tuple[str, Tuple[str, ...], Any, str], ...]:
        """(argument, environment variables, default, description) for each setting."""
        return tuple((f.name, f.metadata["env"], f.default, f.metadata["doc"]) for f in dataclasses.fields(cls))


def _values(
    fields: Tuple["dataclasses.Field[Any]", ...], arguments: Dict[str, Any], environ: Mapping[str, str]
) -> Dict[str, Any]:
    """Each setting's value, parsed: the argument, else the environment; absent: the default."""
    known = {f.name: f for f in fields}
    unknown = set(arguments) - set(known)
    if unknown:
        raise TypeError("unknown posthog_otel setting(s): %s" % ", ".join(sorted(unknown)))
    values: Dict[str, Any] = {}
    for name, spec in known.items():
        parse = spec.metadata["parse"]
        given = arguments.get(name)
        if given is not None:
            try:
                values[name] = parse(given)
            except (TypeError, ValueError, OverflowError) as error:  # int(inf) overflows
                shown = "<redacted>" if name in SECRET_SETTINGS else repr(given)
                raise ValueError("posthog_otel: invalid %s=%s: %s" % (name, shown, error)) from None
            continue
        found = _from_environment(environ, spec.metadata["env"], parse, name in SECRET_SETTINGS, spec.metadata["fatal"])
        if found is not None:
            values[name] = found
    return values


def _check_keys(settings: Settings) -> None:
    """Keys put in each other's place: refused, naming both settings (PostHog's own prefixes:
    ``phc_`` project keys, ``phx_`` personal keys, ``phs_`` project secret keys)."""
    if settings.api_key and settings.api_key.startswith(("phx_", "phs_")):
        raise ValueError(
            "posthog_otel: api_key (POSTHOG_API_KEY) holds a personal or secret key (%s...); the project "
            "API key starts with phc_. Put this one in personal_api_key (POSTHOG_PERSONAL_API_KEY) or "
            "secret_key (POSTHOG_SECRET_KEY), and the project key in api_key" % settings.api_key[:4]
        )
    for name, variable in (("personal_api_key", "POSTHOG_PERSONAL_API_KEY"), ("secret_key", "POSTHOG_SECRET_KEY")):
        key = getattr(settings, name)
        if key and key.startswith("phc_"):
            raise ValueError(
                "posthog_otel: %s (%s) holds a project API key (phc_...); it takes a personal (phx_) or "
                "secret (phs_) key. Put the project key in api_key (POSTHOG_API_KEY)" % (name, variable)
            )


#: Set by ``posthog_otel.testing`` while its local PostHog runs: settings every resolution takes
#: (``api_key``, ``host``, ``spool_dir``...), whatever it was given.
REDIRECT: Optional[Dict[str, Any]] = None


def effective(settings: "Settings") -> "Settings":
    """``settings`` as they are to be used for a request now: while the test fixture runs, a
    pipeline set up before it started (a client made at import) also sends to the local PostHog."""
    redirect = REDIRECT
    if redirect is None or settings.host == redirect["host"]:
        return settings
    cached = _effective.get(id(settings))
    if cached is not None and cached[0] is settings and cached[1] is redirect:
        return cached[2]
    changed = dataclasses.replace(settings, api_key=redirect["api_key"], host=redirect["host"])
    warn_limited("testing:redirect:%s" % settings.host, "posthog_otel.testing: a pipeline set up before posthog_local "
                 "started sends to the local PostHog at %s, not to %s, while it is active", redirect["host"],
                 settings.host)  # fmt: skip
    if len(_effective) > 64:
        _effective.clear()
    _effective[id(settings)] = (settings, redirect, changed)
    return changed


_effective: Dict[int, Tuple[Any, Any, "Settings"]] = {}


def _redirected(arguments: Dict[str, Any]) -> Dict[str, Any]:
    assert REDIRECT is not None
    given = arguments.get("host")
    if given is not None and given != REDIRECT["host"]:
        warn_limited("testing:redirect:%s" % given, "posthog_otel.testing: host %s is redirected to the local "
                     "PostHog at %s while posthog_local is active", given, REDIRECT["host"])  # fmt: skip
    return {**arguments, **REDIRECT}


def _from_environment(
    environ: Mapping[str, str], names: Tuple[str, ...], parse: Callable[[str], Any], secret: bool, fatal: bool = False
) -> Any:
    for name in names:
        text = environ.get(name)
        if text is None or not text.strip():
            continue
        try:
            return parse(text)
        except (TypeError, ValueError, OverflowError) as error:
            shown = "<redacted>" if secret else repr(text)
            if fatal:  # the default would send the data elsewhere (another region, no project)
                raise ValueError("posthog_otel: invalid %s=%s: %s" % (name, shown, error)) from None
            logger.warning("posthog_otel: ignoring %s=%s (%s); using the default", name, shown, error)
            return None
    return None


def from_environment(name: str, environ: Optional[Mapping[str, str]] = None) -> Any:
    """One setting from the environment, else its default: for the emit side, which may run
    in a process that has no PostHog exporter (its records go to a Collector)."""
    spec = next(f for f in dataclasses.fields(Settings) if f.name == name)
    environ = os.environ if environ is None else environ
    found = _from_environment(environ, spec.metadata["env"], spec.metadata["parse"], name in SECRET_SETTINGS)
    return spec.default if found is None else found


def exporter_settings(**arguments: Any) -> Settings:
    """Resolve an exporter's settings; a missing key is an error naming ``POSTHOG_API_KEY``."""
    resolved = Settings.resolve(**arguments)
    if not resolved.api_key:
        raise ValueError(
            "posthog_otel: no PostHog project API key; set POSTHOG_API_KEY "
            "(or pass api_key=...) to your project's key, which starts with phc_"
        )
    if arguments.get("max_attempts") is not None and resolved.spool:
        logger.warning("posthog_otel: max_attempts=%d (PostHog's max_retries=%d) gives up only with spool=False; with "
                       "the spool on, what PostHog does not take waits on disk and is sent when it answers again "
                       "(until spool_max_age)", resolved.max_attempts, resolved.max_attempts - 1)  # fmt: skip
    if resolved.capture_compression and resolved.capture_mode != "v1":
        logger.warning("posthog_otel: capture_compression=%s applies to Capture V1 (capture_mode='v1'); "
                       "/batch/ requests follow gzip", resolved.capture_compression)  # fmt: skip
    if resolved.host.startswith("http://") and not is_loopback(resolved.host):
        logger.warning(
            "posthog_otel: POSTHOG_HOST %s is plain http; events and the project key travel unencrypted",
            resolved.host,
        )
    return resolved


def is_loopback(host: str) -> bool:
    return _is_loopback_name(urlsplit(host).hostname or "")


def _is_loopback_name(name: str) -> bool:
    return name in ("localhost", "::1") or name.startswith("127.")


def redact(api_key: Optional[str]) -> Optional[str]:
    """Enough of a key to tell which one it is in a log line, never the key itself."""
    if api_key is None:
        return None
    if len(api_key) < 12:
        return "<redacted>"
    return "%s...%s" % (api_key[:4], api_key[-2:])


_KEYISH = re.compile(r"\bph[a-z]_[A-Za-z0-9_-]{8,}")


def scrub(text: str, api_key: Optional[str]) -> str:
    """``text`` without the key, nor anything shaped like a PostHog key (``phc_``, ``phx_``...):
    a proxy's error page may echo the request, body and all."""
    if api_key:
        text = text.replace(api_key, redact(api_key) or "")
    return _KEYISH.sub(lambda match: redact(match.group(0)) or "", text)
