"""The operations: ``set``, ``set_once``, ``group_identify``, ``alias``, ``capture``.

Each call resolves identity from its arguments and the current context scope, takes a
sanitized snapshot of the properties, and emits one OpenTelemetry log record following
``_schema``.  Everything else (PostHog's payload shapes, ``$lib``, personless ids,
encoding, delivery) happens later on the exporter's thread, so the caller pays only for
the snapshot and ``Logger.emit``.

No function here raises: every public one runs under ``_guard.guarded``.  Input that
cannot be sent as given is dropped with a warning (rate-limited per call and reason) and
counted; the return value (the operation's uuid, or None) tells the caller what happened,
and a returned uuid is always the one PostHog receives.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, Dict, FrozenSet, Optional, Tuple, Union

from opentelemetry import _logs as otel_logs
from opentelemetry._logs import SeverityNumber

from . import _schema as schema
from . import _personless
from ._baggage import set_propagation
from ._context import Refused, _Scope, context_distinct_id, context_session_id, current_scope, get_tags
from ._envelope import new_uuid7, operation_time, operation_uuid
from ._guard import Dropped, guarded, report_drop
from ._limits import LimitsSource
from ._log import count_drop, logger, warn_limited
from ._properties import sanitize_properties
from ._text import Unusable, as_text, describe
from ._version import __version__

Timestamp = Union[_dt.datetime, str, None]

#: Raise internal errors instead of logging them (set by this package's own test suite).
RAISE_INTERNAL_ERRORS = False

_CAPTURE_NESTED = frozenset({"$set", "$set_once", "$feature_flag_payload"})


class _Emitter:
    """Holds the logger the operations write to.

    By default that is the global LoggerProvider's; ``configure(logger_provider=...)``
    binds another.  Until an SDK provider exists the API hands out a proxy that drops
    records, so the first operation checks once and warns instead of losing data quietly.
    """

    def __init__(self) -> None:
        self.logger: Any = None
        self.limits: Optional[LimitsSource] = None
        self.ready = False
        #: Numbers every record (``posthog.seq``): the exporter counts the gaps as SDK drops.
        self.sequence = itertools.count(1)
        #: Why operations are refused right now (a drop reason), or None.
        self.refusal: Optional[str] = None
        self._exporters = 0
        self._lock = threading.Lock()

    def bind(self, logger_provider: Any) -> None:
        self.logger = logger_provider.get_logger(schema.SCOPE, __version__)
        self.limits = LimitsSource(self.logger)
        self.ready = True

    def unbind(self) -> None:
        """Forget the provider and every exporter (for tests and ``posthog_otel.testing``)."""
        self.logger = None
        self.limits = None
        self.ready = False
        set_propagation(None)
        with self._lock:
            self._exporters, self.refusal = 0, None

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def checkpoint(self) -> int:
        """The first sequence number a record emitted from now on can carry."""
        return next(self.sequence) + 1

    def exporter_opened(self, settings: Any = None) -> None:
        """A PostHog exporter started; its ``propagate_identity`` applies to the operations."""
        if settings is not None:
            set_propagation(settings.propagate_identity)
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

    def emit(self, event_name: str, attributes: Dict[str, Any], body: Any, timestamp: Optional[int]) -> bool:
        if self.refusal is not None:
            return self._refuse(self.refusal)
        if not self.ready and not self.resolve():
            return False
        limits = self.limits
        if limits is not None and limits.may_refuse(len(attributes) + 1):
            # Checked with posthog.seq in place (its value is an int: only its count matters),
            # and before a number is taken: a refused record must not look like an SDK drop.
            attributes[schema.SEQUENCE] = 0
            limits.check(attributes)
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


@guarded("set")
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
    return _person_update(schema.SET, "set", distinct_id, properties, timestamp, uuid, disable_geoip)


@guarded("set_once")
def set_once(
    distinct_id: Any = None,
    properties: Optional[Mapping] = None,
    timestamp: Timestamp = None,
    uuid: Any = None,
    disable_geoip: Optional[bool] = None,
) -> Optional[str]:
    """Set properties on a person only where they are not set yet.  Otherwise as ``set``."""
    return _person_update(schema.SET_ONCE, "set_once", distinct_id, properties, timestamp, uuid, disable_geoip)


@guarded("group_identify")
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
    group_type = _id(group_type, "group type")
    group_key = _id(group_key, "group key")
    if not group_type or not group_key:
        raise Dropped("no_group", "needs a group type and a group key")
    scope = current_scope()
    attributes: Dict[str, Any] = {schema.GROUP_TYPE: group_type, schema.GROUP_KEY: group_key}
    person = _resolve(distinct_id, scope)
    if person is not None:
        attributes[schema.DISTINCT_ID] = person
    body = sanitize_properties(properties, what="group_identify() properties")
    return _finish(schema.GROUP_IDENTIFY, "group_identify", attributes, body, scope, timestamp, uuid, disable_geoip)


@guarded("alias")
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
    previous = _id(previous_id, "previous_id")
    if not previous:
        raise Dropped("no_distinct_id", "needs a previous_id")
    scope = current_scope()
    person = _resolve(distinct_id, scope)
    if person is None:
        raise Dropped(
            "no_distinct_id", "needs a distinct_id (argument or identify_context())%s", _personless.hint(scope)
        )
    attributes = {schema.DISTINCT_ID: person, schema.PREVIOUS_ID: previous}
    return _finish(schema.ALIAS, "alias", attributes, None, scope, timestamp, uuid, disable_geoip)


@guarded("capture")
def capture(
    *args: Any,
    distinct_id: Any = None,
    event: Optional[str] = None,
    properties: Optional[Mapping] = None,
    groups: Optional[Mapping] = None,
    timestamp: Timestamp = None,
    uuid: Any = None,
    disable_geoip: Optional[bool] = None,
    flags: Any = None,
) -> Optional[str]:
    """Capture an event, optionally attached to groups.

    Call shapes: ``capture('dashboard_viewed')`` (the context's person),
    ``capture('user123', 'signup', {...}, groups={'company': 'acme'})``,
    ``capture('signup', {...})`` and ``capture('signup', distinct_id='user123', ...)``.
    Without any distinct id the event is personless, as in PostHog's SDK.
    ``flags=evaluate_flags(...)`` attaches that snapshot's ``$feature/<key>`` values.
    """
    distinct_id, name, properties = _capture_arguments(args, distinct_id, event, properties)
    if flags is not None:
        from ._flags.snapshot import attach_flags

        properties = attach_flags(flags, properties)
    scope = current_scope()
    attributes: Dict[str, Any] = {schema.EVENT: name}
    person = _resolve(distinct_id, scope)
    if person is not None:
        attributes[schema.DISTINCT_ID] = person
    else:
        _personless.note("capture", scope)
    if groups is not None:
        _add_groups(attributes, groups)
    tags = get_tags() if scope is not None else None
    body = _with_tags(properties, tags, "capture() properties", _CAPTURE_NESTED)
    if tags is not None:
        body["$context_tags"] = list(tags)  # tag() keeps text keys only
    return _finish(schema.CAPTURE, "capture", attributes, body, scope, timestamp, uuid, disable_geoip)


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
    person = _resolve(distinct_id, scope)
    if person is None:
        raise Dropped(
            "no_distinct_id", "without a distinct_id (argument or identify_context()) it does nothing%s",
            _personless.hint(scope),
        )  # fmt: skip
    tags = get_tags() if scope is not None else None
    body = _with_tags(properties, tags, "%s() properties" % call)
    if not body:
        raise Dropped("no_properties", "without properties it does nothing")
    attributes = {schema.DISTINCT_ID: person}
    return _finish(operation, call, attributes, body, scope, timestamp, uuid, disable_geoip)


def _finish(
    operation: str,
    call: str,
    attributes: Dict[str, Any],
    body: Any,
    scope: Optional[_Scope],
    timestamp: Timestamp,
    uuid: Any,
    disable_geoip: Optional[bool],
) -> Optional[str]:
    """Add what every operation carries, emit, and return the uuid (None if dropped)."""
    time_ns, beyond_record = (time.time_ns(), None) if timestamp is None else operation_time(timestamp, call)
    operation_uuid_ = new_uuid7(time_ns) if uuid is None else operation_uuid(uuid, time_ns, call)
    attributes[schema.UUID] = operation_uuid_
    if beyond_record is not None:  # a time the record's own timestamp cannot hold
        attributes[schema.TIMESTAMP] = beyond_record
    session = context_session_id(scope)
    if session:
        attributes[schema.SESSION_ID] = session
    if disable_geoip is not None:
        geoip = _flag(disable_geoip, "disable_geoip", call)
        if geoip is not None:
            attributes[schema.DISABLE_GEOIP] = geoip
    if emitter.emit(operation, attributes, body, time_ns if beyond_record is None else None):
        return operation_uuid_
    return None


def _id(value: Any, argument: str) -> Optional[str]:
    """An id argument as text; None when absent or empty.  Unsendable: the call is dropped."""
    if value is None:
        return None
    if type(value) is str and value.isascii():
        return value or None
    try:
        return as_text(value) or None
    except Unusable as problem:
        raise Dropped("invalid_id", "the %s %s %s", argument, describe(value), problem) from None


def _resolve(explicit: Any, scope: Optional[_Scope]) -> Optional[str]:
    """The explicit distinct id if non-empty, else the nearest scope's (or, opt-in, the
    incoming baggage's), else None."""
    person = _id(explicit, "distinct_id")
    if person is not None:
        return person
    found = context_distinct_id(scope)
    if isinstance(found, Refused):
        raise Dropped("invalid_id", "the context's distinct id (identify_context) %s", found.why)
    return found


def _resolve_id(explicit: Any, scope: Optional[_Scope]) -> Optional[str]:
    """``_resolve`` for callers outside an operation (feature flags): an unsendable id is
    said and counted here, and is None to the caller."""
    try:
        return _resolve(explicit, scope)
    except Dropped as drop:
        report_drop("feature_flag", drop)
        return None


def _capture_arguments(
    args: Tuple[Any, ...], distinct_id: Any, event: Any, properties: Any
) -> Tuple[Any, str, Any]:
    """Sort positional arguments into (distinct_id, event, properties), seed and SDK shapes alike."""
    positional = list(args)
    if len(positional) > 3:
        raise Dropped(
            "invalid_arguments", "takes at most 3 positional arguments (distinct_id, event, properties), got %d",
            len(positional),
        )  # fmt: skip
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
            raise Dropped(
                "invalid_arguments", "positional arguments %s do not fit (distinct_id, event, properties) beside "
                "the keywords given", describe(tuple(args)),
            )  # fmt: skip
        properties = positional[0]
    return distinct_id, _event_name(event), properties


def _event_name(event: Any) -> str:
    if type(event) is str and event.isascii() and event:
        return event
    if event is None:
        raise Dropped("no_event", "needs an event name, as capture(event) or capture(distinct_id, event, properties)")
    if not isinstance(event, str):
        raise Dropped("invalid_event", "the event name must be a string, not a %s (%s)", type(event).__name__, describe(event))
    try:
        name = as_text(event)
    except Unusable as problem:
        raise Dropped("invalid_event", "the event name %s %s", describe(event), problem) from None
    if not name:
        raise Dropped("invalid_event", "the event name is empty")
    return name


def _add_groups(attributes: Dict[str, Any], groups: Any) -> None:
    """``posthog.groups.<type> = <key>`` per group; an unsendable type or key drops the call."""
    try:
        items = list(groups.items()) if _is_map(groups) else None
    except Exception:  # a map that cannot be read
        items = None
    if items is None:
        count_drop("invalid_groups")
        warn_limited(
            "invalid_groups:capture",
            "posthog_otel: capture(): groups must be a map of group type to group key, not %s; ignored",
            describe(groups),
        )
        return
    for group_type, group_key in items:
        name = _id(group_type, "group type")
        key = _id(group_key, "group key")
        if name and key:
            attributes[schema.GROUPS_PREFIX + name] = key
        else:
            count_drop("invalid_group")
            warn_limited(
                "invalid_group:capture",
                "posthog_otel: capture(): group %s: %s needs a type and a key; that group is left out",
                describe(group_type),
                describe(group_key),
            )


def _with_tags(properties: Any, tags: Optional[Dict[str, Any]], what: str, keep_nested: FrozenSet[str] = frozenset()) -> Dict[str, Any]:
    """The body: sanitized properties over the context's tags (explicit properties win)."""
    if tags:
        if properties is None:
            properties = tags
        elif type(properties) is dict:
            properties = {**tags, **properties}
        else:  # another kind of map (or not a map): each side sanitized on its own
            body = sanitize_properties(tags, what=what, keep_nested=keep_nested)
            body.update(sanitize_properties(properties, what=what, keep_nested=keep_nested))
            return body
    return sanitize_properties(properties, what=what, keep_nested=keep_nested)


def _flag(value: Any, argument: str, call: str) -> Optional[bool]:
    if value is True or value is False:
        return value
    try:
        return bool(value)
    except Exception:
        warn_limited(
            "invalid_flag:%s:%s" % (call, argument),
            "posthog_otel: %s(): %s=%s is not true or false; the exporter's setting applies",
            call,
            argument,
            describe(value),
        )
        return None


def _is_map(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)
