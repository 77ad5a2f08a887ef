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

import builtins
import datetime as _dt
import itertools
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, Optional, Set, Tuple, Union

from opentelemetry import _logs as otel_logs
from opentelemetry._logs import SeverityNumber

from . import _baggage, _personless, _state
from . import _schema as schema
from ._baggage import set_propagation
from ._context import RefusedId, _Scope, context_distinct_id, context_session_id, current_scope, tags_of
from ._envelope import new_uuid7, operation_time, operation_uuid
from ._guard import Dropped, guarded, report_drop
from ._limits import LimitsSource
from ._log import count_drop, warn_limited
from ._properties import sanitize_properties
from ._text import Unusable, as_text, describe
from ._version import __version__

if TYPE_CHECKING:  # _posthog imports this module
    from ._posthog import Client

Timestamp = Union[_dt.datetime, str, None]

_CAPTURE_NESTED = frozenset({"$set", "$set_once", "$feature_flag_payload"})


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
    from . import _module

    return _module.configure_from_attributes(provider, emitter)


def is_placeholder(provider: Any) -> bool:
    """True for the API's stand-ins (proxy before set-up, no-op), which drop records."""
    return type(provider).__name__ in ("ProxyLoggerProvider", "NoOpLoggerProvider")


emitter = _Emitter()
_state.at_fork(emitter.after_fork)


# --- the operations ------------------------------------------------------------------


class Operations:
    """The five operations, writing to one emitter: the module's functions are the methods of
    ``default``; each ``Client`` is an ``Operations`` with an emitter (and flags) of its own."""

    def __init__(self, emitter: _Emitter) -> None:
        self._emitter = emitter
        self._routed: Optional[Client] = None  # the module's: ``posthog_otel.default_client = ...``

    def _flag_service(self) -> Any:
        """The flag service ``send_feature_flags`` evaluates with (None: the module's)."""
        return self._routed._flag_service() if self._routed is not None else None

    def route(self, client: Optional[Client]) -> None:
        """Write to ``client``'s pipeline instead (None: back to this object's own emitter)."""
        self._routed = client
        self._emitter = client._emitter if client is not None else emitter

    @guarded("set")
    def set(
        self,
        distinct_id: Any = None,
        properties: Optional[Mapping[str, Any]] = None,
        timestamp: Timestamp = None,
        uuid: Any = None,
        disable_geoip: Optional[bool] = None,
    ) -> Optional[str]:
        """Set properties on a person, overwriting existing values.

        ``set('user123', {...})``, ``set({...})`` (the context's person) or keywords.
        Context tags are folded into the properties (explicit properties win).  Returns the
        operation's uuid, or None when nothing was sent (no distinct id, no properties).
        """
        return _person_update(self._emitter, schema.SET, "set", distinct_id, properties, timestamp, uuid, disable_geoip)

    @guarded("set_once")
    def set_once(
        self,
        distinct_id: Any = None,
        properties: Optional[Mapping[str, Any]] = None,
        timestamp: Timestamp = None,
        uuid: Any = None,
        disable_geoip: Optional[bool] = None,
    ) -> Optional[str]:
        """Set properties on a person only where they are not set yet.  Otherwise as ``set``."""
        return _person_update(
            self._emitter, schema.SET_ONCE, "set_once", distinct_id, properties, timestamp, uuid, disable_geoip
        )

    @guarded("unset")
    def unset(
        self,
        distinct_id: Any = None,
        properties: Any = None,
        timestamp: Timestamp = None,
        uuid: Any = None,
        disable_geoip: Optional[bool] = None,
    ) -> Optional[str]:
        """Remove properties from a person (PostHog's ``$unset``; posthog-node's ``unsetPersonProperties``).

        ``unset('user123', ['plan', 'email'])``, ``unset('user123', 'plan')``, or ``unset(['plan'])``
        for the context's person. Returns the uuid, or None when nothing was sent (no distinct
        id, no usable names).
        """
        from ._unset import unset

        return unset(self._emitter, distinct_id, properties, timestamp, uuid, disable_geoip)

    @guarded("group_identify")
    def group_identify(
        self,
        group_type: Any,
        group_key: Any,
        properties: Optional[Mapping[str, Any]] = None,
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
        return _finish(
            self._emitter,
            schema.GROUP_IDENTIFY,
            "group_identify",
            attributes,
            body,
            scope,
            timestamp,
            uuid,
            disable_geoip,
        )

    @guarded("alias")
    def alias(
        self,
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
        return _finish(self._emitter, schema.ALIAS, "alias", attributes, None, scope, timestamp, uuid, disable_geoip)

    @guarded("capture")
    def capture(
        self,
        *args: Any,
        distinct_id: Any = None,
        event: Optional[str] = None,
        properties: Optional[Mapping[str, Any]] = None,
        groups: Optional[Mapping[str, Any]] = None,
        timestamp: Timestamp = None,
        uuid: Any = None,
        disable_geoip: Optional[bool] = None,
        flags: Any = None,
        send_feature_flags: Any = False,
    ) -> Optional[str]:
        """Capture an event, optionally attached to groups.

        Call shapes: ``capture('dashboard_viewed')`` (the context's person),
        ``capture('user123', 'signup', {...}, groups={'company': 'acme'})``,
        ``capture('signup', {...})`` and ``capture('signup', distinct_id='user123', ...)``.
        Without any distinct id the event is personless, as in PostHog's SDK.
        ``flags=evaluate_flags(...)`` attaches that snapshot's ``$feature/<key>`` values;
        ``send_feature_flags=True`` (PostHog's older way, which asks for the flags on this
        thread) evaluates them for the event's person and attaches them the same way.
        """
        if (
            len(args) == 3
            and event is None
            and distinct_id is None
            and properties is None
            and type(args[0]) is str
            and type(args[1]) is str
            and args[1]
            and args[1].isascii()
            and type(args[2]) is dict
        ):  # capture('user123', 'signup', {...}), the common shape, sorted without a call
            distinct_id, name, properties = args
        else:
            distinct_id, name, properties = _capture_arguments(args, distinct_id, event, properties)
        scope = current_scope()
        if type(distinct_id) is str and distinct_id and distinct_id.isascii():
            person: Optional[str] = distinct_id
        else:
            person = _resolve(distinct_id, scope)
        if flags is None and send_feature_flags and person is not None and self._emitter.blocked is None:
            flags = _feature_flags_for_capture(self._flag_service(), person, groups, disable_geoip, send_feature_flags)
        if flags is not None:
            from ._flags.snapshot import attach_flags

            properties = attach_flags(flags, properties)
        attributes: Dict[str, Any] = {schema.EVENT: name}
        if person is not None:
            attributes[schema.DISTINCT_ID] = person
        else:
            _personless.note("capture", scope)
        if type(properties) is not dict or "$groups" in properties:  # a $groups property joins groups=
            properties, named = _groups_property(properties)
            if named is not None:
                _add_groups(attributes, named)
        if groups is not None:  # groups= last: its key wins for a type named in both
            _add_groups(attributes, groups)
        if scope is None:
            body = sanitize_properties(properties, what="capture() properties", keep_nested=_CAPTURE_NESTED)
        else:
            tags = tags_of(scope)
            body = _with_tags(properties, tags, "capture() properties", _CAPTURE_NESTED)
            body["$context_tags"] = list(tags)  # tag() keeps text keys only
        return _finish(
            self._emitter, schema.CAPTURE, "capture", attributes, body, scope, timestamp, uuid, disable_geoip
        )

    @guarded("capture_exception")
    def capture_exception(
        self,
        exception: Any = None,
        distinct_id: Any = None,
        properties: Optional[Mapping[str, Any]] = None,
        *,
        timestamp: Timestamp = None,
        uuid: Any = None,
        groups: Optional[Mapping[str, Any]] = None,
        disable_geoip: Optional[bool] = None,
        flags: Any = None,
    ) -> Optional[str]:
        """Send ``exception`` (by default the one being handled) to PostHog error tracking.

        ``capture_exception(e)``, ``capture_exception()`` inside ``except``, or an
        ``sys.exc_info()`` tuple; ``distinct_id`` falls back to the context's person (none:
        personless, as PostHog's SDK), and the context's session and tags apply. Returns the
        event's uuid, or None when nothing was sent: no exception, one already captured, or
        one raised at the same place too often (``drop_counts()["exception_rate_limited"]``).
        """
        from ._exceptions.capture import How, capture

        return capture(exception, distinct_id, properties, timestamp, uuid, groups, disable_geoip, flags, How(),
                       self._emitter)  # fmt: skip


def _feature_flags_for_capture(service: Any, person: str, groups: Any, disable_geoip: Any, options: Any) -> Any:
    """``capture(send_feature_flags=...)``: a snapshot of every flag for the event's person, as
    PostHog's SDK takes it (``True``, or its options map), never reporting ``$feature_flag_called``."""
    from ._flags import api
    from ._flags.service import using

    if options is True:
        options = {}
    elif not isinstance(options, Mapping):
        raise Dropped("invalid_argument", "send_feature_flags must be true/false or a map of options, not %s",
                      describe(options))  # fmt: skip
    with using(service):
        return api.evaluate_flags(
            person,
            groups=groups if _is_map(groups) else None,
            person_properties=options.get("person_properties"),
            group_properties=options.get("group_properties"),
            only_evaluate_locally=bool(options.get("only_evaluate_locally")),
            disable_geoip=disable_geoip,
            flag_keys=options.get("flag_keys_filter"),
        )


#: The module's operations (``posthog_otel.set``...).
default = Operations(emitter)
set = default.set
set_once = default.set_once
group_identify = default.group_identify
alias = default.alias
capture = default.capture
capture_exception = default.capture_exception
unset = default.unset


# --- shared steps -----------------------------------------------------------------------


def _person_update(
    target: _Emitter,
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
    if type(distinct_id) is str and distinct_id and distinct_id.isascii():
        person: Optional[str] = distinct_id  # the common case, decided here: no call
    else:
        person = _resolve(distinct_id, scope)
    if person is None:
        raise Dropped(
            "no_distinct_id", "without a distinct_id (argument or identify_context()) it does nothing%s",
            _personless.hint(scope),
        )  # fmt: skip
    if scope is None:
        body = sanitize_properties(properties, what=_WHAT[call])
    else:
        body = _with_tags(properties, tags_of(scope), _WHAT[call])
    if not body:
        raise Dropped("no_properties", "without properties it does nothing")
    attributes = {schema.DISTINCT_ID: person}
    return _finish(target, operation, call, attributes, body, scope, timestamp, uuid, disable_geoip)


#: The text warnings name a call's properties with, built once.
_WHAT = {call: "%s() properties" % call for call in ("set", "set_once")}


def _finish(
    target: _Emitter,
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
    if scope is not None or _baggage._propagate is not False:  # else: no session can apply (no call)
        session = context_session_id(scope)
        if session:
            attributes[schema.SESSION_ID] = session
    if disable_geoip is not None:
        geoip = _flag(disable_geoip, "disable_geoip", call)
        if geoip is not None:
            attributes[schema.DISABLE_GEOIP] = geoip
    if target.emit(operation, attributes, body, time_ns if beyond_record is None else None):
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
    if isinstance(found, RefusedId):
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


def _capture_arguments(args: Tuple[Any, ...], distinct_id: Any, event: Any, properties: Any) -> Tuple[Any, str, Any]:
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
        raise Dropped(
            "invalid_event", "the event name must be a string, not a %s (%s)", type(event).__name__, describe(event)
        )
    try:
        name = as_text(event)
    except Unusable as problem:
        raise Dropped("invalid_event", "the event name %s %s", describe(event), problem) from None
    if not name:
        raise Dropped("invalid_event", "the event name is empty")
    return name


def _groups_property(properties: Any) -> Tuple[Any, Any]:
    """(properties, the groups of a ``$groups`` property or None): PostHog reads ``$groups`` as
    the event's groups, so it joins ``groups=`` instead of being flattened to ``$groups.<type>``
    (PostHog's SDK lets ``groups=`` replace it whole; here ``groups=`` wins type by type)."""
    if type(properties) is dict:
        if "$groups" not in properties:
            return properties, None
    elif not _is_map(properties) or "$groups" not in properties:
        return properties, None
    named = properties["$groups"]
    properties = {key: value for key, value in properties.items() if key != "$groups"}
    if not _is_map(named):
        count_drop("invalid_groups")
        warn_limited("invalid_groups:capture:property", "posthog_otel: capture(): the $groups property must be a map "
                     "of group type to group key, not %s; left out", describe(named))  # fmt: skip
        return properties, None
    return properties, named


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


def _with_tags(
    properties: Any, tags: Optional[Dict[str, Any]], what: str, keep_nested: FrozenSet[str] = frozenset()
) -> Dict[str, Any]:
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
