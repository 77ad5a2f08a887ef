"""The operations: ``set``, ``set_once``, ``group_identify``, ``alias``, ``capture``.

Each call resolves identity from its arguments and the current context scope, takes a
sanitized snapshot of the properties, and emits one OpenTelemetry log record following
``_schema``.  Everything else (PostHog's payload shapes, ``$lib``, personless ids,
encoding, delivery) happens later on the exporter's thread, so the caller pays only for
the snapshot and ``Logger.emit``.

No function here raises: bad input is dropped with a rate-limited warning and counted,
and the return value (the operation's uuid, or None) tells the caller what happened.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import logging
import re
import threading
import sys
import time
import uuid as _uuid
from random import getrandbits as _getrandbits
from collections.abc import Mapping
from typing import Any, Dict, Optional, Tuple, Union

from opentelemetry import _logs as otel_logs
from opentelemetry._logs import SeverityNumber

from . import _schema as schema
from ._context import _Scope, current_scope, distinct_id_of, get_tags, session_of
from ._log import count_drop, logger, warn_limited
from ._properties import sanitize_properties
from ._version import __version__

Timestamp = Union[_dt.datetime, str, None]

#: Raise internal errors instead of logging them (set by this package's own test suite).
RAISE_INTERNAL_ERRORS = False

_CAPTURE_NESTED = frozenset({"$set", "$set_once"})


class _Emitter:
    """Holds the logger the operations write to.

    By default that is the global LoggerProvider's; ``configure(logger_provider=...)``
    binds another.  Until an SDK provider exists the API hands out a proxy that drops
    records, so the first operation checks once and warns instead of losing data quietly.
    """

    def __init__(self) -> None:
        self.logger: Any = None
        self.ready = False
        #: Numbers every record (``posthog.seq``): the exporter counts the gaps as SDK drops.
        self.sequence = itertools.count(1)
        #: Why operations are refused right now (a drop reason), or None.
        self.refusal: Optional[str] = None
        self._exporters = 0
        self._lock = threading.Lock()

    def bind(self, logger_provider: Any) -> None:
        self.logger = logger_provider.get_logger(schema.SCOPE, __version__)
        self.ready = True

    def unbind(self) -> None:
        """Forget the provider and every exporter (for tests and ``posthog_otel.testing``)."""
        self.logger = None
        self.ready = False
        with self._lock:
            self._exporters, self.refusal = 0, None

    def checkpoint(self) -> int:
        """The first sequence number a record emitted from now on can carry."""
        return next(self.sequence) + 1

    def exporter_opened(self) -> None:
        with self._lock:
            self._exporters += 1
            self.refusal = None

    def exporter_closed(self) -> None:
        """The last PostHog exporter of the process shut down: later operations would vanish."""
        with self._lock:
            self._exporters -= 1
            if self._exporters <= 0:
                self._exporters, self.refusal = 0, "after_shutdown"

    def exporter_failed(self, reason: str) -> None:
        """An exporter could not be built (no API key): nothing would deliver the operations."""
        with self._lock:
            if self._exporters <= 0:
                self.refusal = reason

    def resolve(self) -> bool:
        provider = otel_logs.get_logger_provider()
        if is_placeholder(provider) and _configure_from_module_attributes():
            return True
        if is_placeholder(provider):
            count_drop("no_logger_provider")
            warn_limited(
                "no_logger_provider",
                "posthog_otel: no OpenTelemetry LoggerProvider is configured, so PostHog operations are "
                "being dropped. Call posthog_otel.configure() at start-up, or run under "
                "`opentelemetry-instrument` with OTEL_LOGS_EXPORTER=posthog.",
            )
            return False
        self.bind(provider)
        return True

    def emit(self, event_name: str, attributes: Dict[str, Any], body: Any, timestamp: int) -> bool:
        if self.refusal is not None:
            return self._refuse(self.refusal)
        if not self.ready and not self.resolve():
            return False
        attributes[schema.SEQUENCE] = next(self.sequence)
        self.logger.emit(
            timestamp=timestamp,
            severity_number=SeverityNumber.INFO,
            body=body,
            attributes=attributes,
            event_name=event_name,
        )
        return True


    @staticmethod
    def _refuse(reason: str) -> bool:
        count_drop(reason)
        if reason == "after_shutdown":
            warn_limited(reason, "posthog_otel: operation after the PostHog exporter shut down; dropped")
        else:
            warn_limited(reason, "posthog_otel: the PostHog exporter could not start (no project API key: set "
                         "POSTHOG_API_KEY); operations are dropped")  # fmt: skip
        return False


def _configure_from_module_attributes() -> bool:
    """The seed's style, ``posthog.api_key = 'phc_...'``: configure from those attributes.

    Only an explicit assignment counts; an API key in the environment alone does not,
    because the application may still be about to install its own LoggerProvider.
    """
    package = sys.modules.get("posthog_otel")
    api_key = getattr(package, "api_key", None)
    if not api_key:
        return False
    from ._setup import configure

    try:
        configure(api_key=api_key, host=getattr(package, "host", None))
    except ValueError as error:
        warn_limited("module_configure", "%s", error)
        return False
    logger.info("posthog_otel: configured from posthog_otel.api_key (no LoggerProvider was installed)")
    return True


def is_placeholder(provider: Any) -> bool:
    """True for the API's stand-ins (proxy before set-up, no-op), which drop records."""
    return type(provider).__name__ in ("ProxyLoggerProvider", "NoOpLoggerProvider")


emitter = _Emitter()


# --- the operations ------------------------------------------------------------------


def set(
    distinct_id: Any = None,
    properties: Optional[Mapping] = None,
    timestamp: Timestamp = None,
    uuid: Any = None,
    disable_geoip: Optional[bool] = None,
) -> Optional[str]:
    """Set properties on a person, overwriting existing values.

    ``set('user123', {...})``, ``set({...})`` (the context's person) or keywords.
    Context tags are folded into the properties (explicit properties win).  Returns the
    operation's uuid, or None when nothing was sent (no distinct id, no properties).
    """
    try:
        return _person_update(schema.SET, "set", distinct_id, properties, timestamp, uuid, disable_geoip)
    except Exception:
        return _internal_error("set")


def set_once(
    distinct_id: Any = None,
    properties: Optional[Mapping] = None,
    timestamp: Timestamp = None,
    uuid: Any = None,
    disable_geoip: Optional[bool] = None,
) -> Optional[str]:
    """Set properties on a person only where they are not set yet.  Otherwise as ``set``."""
    try:
        return _person_update(
            schema.SET_ONCE, "set_once", distinct_id, properties, timestamp, uuid, disable_geoip
        )
    except Exception:
        return _internal_error("set_once")


def group_identify(
    group_type: Any,
    group_key: Any,
    properties: Optional[Mapping] = None,
    timestamp: Timestamp = None,
    uuid: Any = None,
    disable_geoip: Optional[bool] = None,
    distinct_id: Any = None,
) -> Optional[str]:
    """Set properties on a group (``group_identify('company', 'acme', {...})``).

    Without a distinct id (argument or context) PostHog's rule applies: the event is sent
    under a random one.  Returns the uuid, or None when the group type or key is missing.
    """
    try:
        group_type = _text(group_type)
        group_key = _text(group_key)
        if not group_type or not group_key:
            return _dropped(
                "no_group",
                "group_identify() needs a group type and a group key; the call is dropped",
            )
        scope = current_scope()
        attributes: Dict[str, Any] = {schema.GROUP_TYPE: group_type, schema.GROUP_KEY: group_key}
        person = _resolve_id(distinct_id, scope)
        if person is not None:
            attributes[schema.DISTINCT_ID] = person
        body = sanitize_properties(properties, what="group_identify() properties")
        return _finish(schema.GROUP_IDENTIFY, attributes, body, scope, timestamp, uuid, disable_geoip)
    except Exception:
        return _internal_error("group_identify")


def alias(
    previous_id: Any,
    distinct_id: Any = None,
    timestamp: Timestamp = None,
    uuid: Any = None,
    disable_geoip: Optional[bool] = None,
) -> Optional[str]:
    """Link ``previous_id`` (e.g. an anonymous id) to ``distinct_id`` (the identified person).

    ``distinct_id`` falls back to the context's person.  Returns the uuid, or None when
    either id is missing.
    """
    try:
        previous = _text(previous_id)
        if not previous:
            return _dropped("no_distinct_id", "alias() needs a previous_id; the call is dropped")
        scope = current_scope()
        person = _resolve_id(distinct_id, scope)
        if person is None:
            return _dropped(
                "no_distinct_id",
                "alias() needs a distinct_id (argument or identify_context()); the call is dropped",
            )
        attributes = {schema.DISTINCT_ID: person, schema.PREVIOUS_ID: previous}
        return _finish(schema.ALIAS, attributes, None, scope, timestamp, uuid, disable_geoip)
    except Exception:
        return _internal_error("alias")


def capture(
    *args: Any,
    distinct_id: Any = None,
    event: Optional[str] = None,
    properties: Optional[Mapping] = None,
    groups: Optional[Mapping] = None,
    timestamp: Timestamp = None,
    uuid: Any = None,
    disable_geoip: Optional[bool] = None,
) -> Optional[str]:
    """Capture an event, optionally attached to groups.

    Call shapes: ``capture('dashboard_viewed')`` (the context's person),
    ``capture('user123', 'signup', {...}, groups={'company': 'acme'})``,
    ``capture('signup', {...})`` and ``capture('signup', distinct_id='user123', ...)``.
    Without any distinct id the event is personless, as in PostHog's SDK.
    """
    try:
        parsed = _capture_arguments(args, distinct_id, event, properties)
        if parsed is None:
            return _dropped(
                "no_event",
                "capture() needs an event name, as capture(event) or capture(distinct_id, event, "
                "properties); the call is dropped",
            )
        distinct_id, event, properties = parsed
        scope = current_scope()
        attributes: Dict[str, Any] = {schema.EVENT: event}
        person = _resolve_id(distinct_id, scope)
        if person is not None:
            attributes[schema.DISTINCT_ID] = person
        if groups:
            _add_groups(attributes, groups)
        if scope is None:
            body = sanitize_properties(properties, what="capture() properties", keep_nested=_CAPTURE_NESTED)
        else:
            tags = get_tags()
            merged = {**tags, **properties} if isinstance(properties, Mapping) else tags
            body = sanitize_properties(merged, what="capture() properties", keep_nested=_CAPTURE_NESTED)
            body["$context_tags"] = [key if type(key) is str else str(key) for key in tags]
        return _finish(schema.CAPTURE, attributes, body, scope, timestamp, uuid, disable_geoip)
    except Exception:
        return _internal_error("capture")


# --- shared steps -----------------------------------------------------------------------


def _person_update(
    operation: str,
    call: str,
    distinct_id: Any,
    properties: Any,
    timestamp: Timestamp,
    uuid: Any,
    disable_geoip: Optional[bool],
) -> Optional[str]:
    if properties is None and distinct_id is not None and _is_map(distinct_id):
        distinct_id, properties = None, distinct_id  # set({...}): the context's person
    scope = current_scope()
    person = _resolve_id(distinct_id, scope)
    if person is None:
        return _dropped(
            "no_distinct_id",
            "%s() without a distinct_id (argument or identify_context()) does nothing; the call is dropped",
            call,
        )
    if scope is not None:
        tags = get_tags()
        if tags:
            properties = {**tags, **properties} if isinstance(properties, Mapping) else tags
    body = sanitize_properties(properties, what="%s() properties" % call)
    if not body:
        return _dropped("no_properties", "%s() with no properties does nothing; the call is dropped", call)
    attributes = {schema.DISTINCT_ID: person}
    return _finish(operation, attributes, body, scope, timestamp, uuid, disable_geoip)


def _finish(
    operation: str,
    attributes: Dict[str, Any],
    body: Any,
    scope: Optional[_Scope],
    timestamp: Timestamp,
    uuid: Any,
    disable_geoip: Optional[bool],
) -> Optional[str]:
    """Add what every operation carries, emit, and return the uuid (None if dropped)."""
    time_ns = _timestamp_ns(timestamp)
    operation_uuid = _operation_uuid(uuid, time_ns)
    attributes[schema.UUID] = operation_uuid
    if scope is not None:
        session = session_of(scope)
        if session:
            attributes[schema.SESSION_ID] = session
    if disable_geoip is not None:
        attributes[schema.DISABLE_GEOIP] = bool(disable_geoip)
    if emitter.emit(operation, attributes, body, time_ns):
        return operation_uuid
    return None


def _resolve_id(explicit: Any, scope: Optional[_Scope]) -> Optional[str]:
    """Explicit id (stringified) if non-empty, else the nearest scope's, else None."""
    if explicit is not None:
        text = explicit if type(explicit) is str else _text(explicit)
        if text:
            return text
    return distinct_id_of(scope)


def _capture_arguments(
    args: Tuple[Any, ...], distinct_id: Any, event: Optional[str], properties: Any
) -> Optional[Tuple[Any, str, Any]]:
    """Sort positional arguments into (distinct_id, event, properties), seed and SDK shapes alike."""
    positional = list(args)
    if len(positional) > 3:
        return None
    if event is None:
        if len(positional) >= 2 and not _is_map(positional[1]):
            distinct_id, event = positional[0], positional[1]  # capture(distinct_id, event, ...)
            positional = positional[2:]
        elif positional:
            event = positional[0]  # capture(event) or capture(event, properties)
            positional = positional[1:]
    elif positional and distinct_id is None:
        distinct_id = positional.pop(0)  # capture('user123', event='signup')
    if positional:
        if properties is not None or len(positional) > 1:
            return None
        properties = positional[0]
    if not isinstance(event, str) or not event:
        return None
    return distinct_id, event, properties


def _add_groups(attributes: Dict[str, Any], groups: Any) -> None:
    if not _is_map(groups):
        _dropped("invalid_groups", "capture() groups must be a map of group type to group key; ignored")
        return
    for group_type, group_key in groups.items():
        key = _text(group_key)
        if key:
            attributes[schema.GROUPS_PREFIX + str(group_type)] = key


def new_uuid7(time_ns: int) -> str:
    """A version-7 uuid (RFC 9562): 48 bits of milliseconds, then 74 random bits.

    Time-ordered ids are what PostHog's newer SDKs send; building the text directly costs
    half of ``str(uuid.uuid4())``.  ``random`` reseeds itself in a forked child, so
    parent and child never share a sequence.
    """
    ms = time_ns // 1_000_000
    rand = _getrandbits(74)
    return "%08x-%04x-%04x-%04x-%012x" % (
        ms >> 16,
        ms & 0xFFFF,
        0x7000 | (rand >> 62),
        0x8000 | ((rand >> 48) & 0x3FFF),
        rand & 0xFFFFFFFFFFFF,
    )


def _operation_uuid(value: Any, time_ns: int) -> str:
    if value is None:
        return new_uuid7(time_ns)
    if isinstance(value, _uuid.UUID):
        return str(value)
    text = value if isinstance(value, str) else None
    if text is not None:
        try:
            _uuid.UUID(text)
            return text
        except ValueError:
            pass
    warn_limited("invalid_uuid", "posthog_otel: invalid uuid %s replaced by a new one", _short(value))
    return new_uuid7(time_ns)


_DATE_ONLY = re.compile(r"\d{4}-?\d{2}-?\d{2}")
_COMPACT_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _timestamp_ns(value: Timestamp) -> int:
    """Nanoseconds since the epoch; now for None or an invalid value (with a warning)."""
    if value is None:
        return time.time_ns()
    try:
        moment = _parse_timestamp(value)
    except (TypeError, ValueError, OverflowError):
        warn_limited("invalid_timestamp", "posthog_otel: invalid timestamp %s, using the current time", _short(value))
        return time.time_ns()
    delta = _as_utc(moment) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _parse_timestamp(value: Any) -> _dt.datetime:
    if isinstance(value, _dt.datetime):
        return value
    if isinstance(value, str):
        if _DATE_ONLY.fullmatch(value):
            raise ValueError("a date is not a timestamp")
        text = _COMPACT_OFFSET.sub(r"\1:\2", value.replace("Z", "+00:00"))
        return _dt.datetime.fromisoformat(text)
    raise TypeError("not a datetime or ISO 8601 string")


def _as_utc(moment: _dt.datetime) -> _dt.datetime:
    """PostHog's SDK rule for naive datetimes: local time if it is about now, else UTC."""
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        if 0 <= (_dt.datetime.now() - moment).total_seconds() < 5:
            moment = moment.astimezone()  # naive "now()": the system's local zone
        else:
            moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc)


def _is_map(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return str(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _dropped(reason: str, message: str, *args: Any) -> Optional[str]:
    count_drop(reason)
    warn_limited("drop:" + reason, "posthog_otel: " + message, *args)
    return None


def _internal_error(call: str) -> Optional[str]:
    count_drop("internal_error")
    if RAISE_INTERNAL_ERRORS:
        raise
    warn_limited("internal:" + call, "posthog_otel: internal error in %s(); the call is dropped", call, level=logging.ERROR)
    logger.debug("internal error in %s()", call, exc_info=True)
    return None
