"""Records in, PostHog events out.  Pure: no I/O, no clock, no environment.

The only impure input, fresh ids for operations that lack one, comes in as a function
argument so tests can pin it.  Every field rule of the ``/batch/`` payload lives here;
the shapes are PostHog's own Python SDK's (checked against it in
``tests/test_conformance.py``).
"""

from __future__ import annotations

import datetime as _dt
import re
import uuid as _uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from . import _schema as schema
from ._envelope import new_uuid4
from ._text import Unusable, as_text

NewId = Callable[[], str]
#: What a builder gives: the event's own fields, and its properties (completed by ``to_posthog_event``).
Built = Tuple[Dict[str, Any], Dict[str, Any]]
Builder = Callable[["Operation", Mapping[str, Any], NewId], Built]


#: The ids of events (and personless persons) that come without one: random, version 4.
new_uuid: NewId = new_uuid4


class Operation(NamedTuple):
    """What the mapping needs of a log record (or a span event).

    A NamedTuple: one is built per record on the exporter's thread, and tuples are the
    cheapest immutable records Python has.
    """

    name: str
    attributes: Mapping[str, Any]
    body: Any = None
    time_unix_nano: int = 0
    trace_id: int = 0
    span_id: int = 0
    resource: Mapping[str, Any] = {}

    @classmethod
    def from_log_record(cls, readable: Any) -> "Operation":
        record = readable.log_record
        resource = getattr(readable, "resource", None)
        # The SDK's BoundedAttributes takes a lock per iteration and reads through the
        # Mapping ABC; one plain copy (its own ``copy()`` where it has one) makes the
        # look-ups below plain dict reads.
        source = record.attributes
        attributes = (
            (source.copy() if isinstance(source, dict) or hasattr(source, "copy") else dict(source)) if source else {}
        )
        return cls(
            record.event_name,
            attributes,
            record.body,
            record.timestamp or record.observed_timestamp or 0,
            record.trace_id or 0,
            record.span_id or 0,
            resource.attributes if resource is not None else {},
        )


@dataclass(frozen=True)
class Defaults:
    """Per-exporter constants merged into every event."""

    library: Mapping[str, Any]  # $lib, $lib_version, $is_server
    system: Mapping[str, Any]  # $python_version, $os... (capture events only, as PostHog's SDK)
    disable_geoip: bool = True
    trace_context: bool = True  # $trace_id/$span_id of the span the operation was emitted in


class Skipped(Exception):
    """An operation that cannot become a PostHog event; ``reason`` is the drop counter key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def to_posthog_events(
    operations: Sequence[Operation], defaults: Defaults, new_id: NewId = new_uuid
) -> Tuple[List[Dict[str, Any]], List[Skipped]]:
    """Map operations to events; records outside the schema are ignored, invalid ones reported."""
    events: List[Dict[str, Any]] = []
    skipped: List[Skipped] = []
    for operation in operations:
        if not schema.is_operation(operation.name):
            continue
        try:
            events.append(to_posthog_event(operation, defaults, new_id))
        except Skipped as problem:
            skipped.append(problem)
    return events, skipped


def to_posthog_event(operation: Operation, defaults: Defaults, new_id: NewId = new_uuid) -> Dict[str, Any]:
    """One PostHog event for one operation; raises ``Skipped`` when the record is unusable."""
    build = _BUILDERS[operation.name]
    attributes = operation.attributes
    event, properties = build(operation, attributes, new_id)
    event["uuid"] = _valid_uuid(attributes.get(schema.UUID)) or new_id()
    event["timestamp"] = _timestamp(operation)
    session = _first(attributes, _SESSION_KEYS)
    if session and "$session_id" not in properties:
        properties["$session_id"] = _id_text(session, "session id", operation)
    if operation.trace_id and defaults.trace_context and "$trace_id" not in properties:
        properties["$trace_id"] = "%032x" % operation.trace_id
        properties["$span_id"] = "%016x" % operation.span_id
    if operation.name in _EVENTS:  # PostHog's SDK adds them to captured events, $exception included
        properties.update(defaults.system)
    properties.update(defaults.library)
    disable_geoip = attributes.get(schema.DISABLE_GEOIP)
    if disable_geoip if disable_geoip is not None else defaults.disable_geoip:
        properties["$geoip_disable"] = True
    event["properties"] = properties
    return event


def _person_update(key: str) -> Builder:
    def build(operation: Operation, attributes: Mapping[str, Any], new_id: NewId) -> Built:
        person = _distinct_id(operation)
        if person is None:
            raise Skipped("no_distinct_id", "%s without a distinct id" % operation.name)
        if not _is_map(operation.body) or not operation.body:
            raise Skipped("no_properties", "%s without properties" % operation.name)
        body = operation.body  # read-only from here on: copied only if it is not a plain dict
        event = {"event": "$" + key, "distinct_id": person, "$" + key: body if type(body) is dict else dict(body)}
        return event, {}

    return build


def _unset(operation: Operation, attributes: Mapping[str, Any], new_id: NewId) -> Built:
    """``$set`` with ``properties.$unset``: the names, as posthog-node sends them. The body is the
    list of names; a map body (a span event's properties) names them by its keys."""
    person = _distinct_id(operation)
    if person is None:
        raise Skipped("no_distinct_id", "posthog.unset without a distinct id")
    names = unset_names(operation.body)
    if not names:
        raise Skipped("no_properties", "posthog.unset without property names")
    return {"event": "$set", "distinct_id": person}, {"$unset": names}


def unset_names(body: Any) -> List[str]:
    """The property names of an unset: text and not blank, in order (posthog-node's rule). What is
    not text is left out (the emit side has already said so for our own records)."""
    if _is_map(body):
        body = list(body.keys())
    elif isinstance(body, str):
        body = [body]
    elif not isinstance(body, (list, tuple)):
        return []
    names: List[str] = []
    for name in body:
        if isinstance(name, str) and name.strip():
            try:
                names.append(as_text(name))
            except Unusable:
                continue
    return names


def _group_identify(operation: Operation, attributes: Mapping[str, Any], new_id: NewId) -> Built:
    group_type = attributes.get(schema.GROUP_TYPE)
    group_key = attributes.get(schema.GROUP_KEY)
    if not group_type or not group_key:
        raise Skipped("no_group", "posthog.group_identify without group type or key")
    body = operation.body
    properties = {
        "$group_type": _id_text(group_type, "group type", operation),
        "$group_key": _id_text(group_key, "group key", operation),
        "$group_set": dict(body) if _is_map(body) else {},
    }
    person = _distinct_id(operation) or new_id()  # PostHog's SDK: always personful, random id
    return {"event": "$groupidentify", "distinct_id": person}, properties


def _alias(operation: Operation, attributes: Mapping[str, Any], new_id: NewId) -> Built:
    previous = attributes.get(schema.PREVIOUS_ID)
    person = _distinct_id(operation)
    if not previous or person is None:
        raise Skipped("no_distinct_id", "posthog.alias without both ids")
    previous = _id_text(previous, "previous id", operation)
    # PostHog's wire shape: the event belongs to the previous id; "alias" is the new one.
    properties = {"distinct_id": previous, "alias": person}
    return {"event": "$create_alias", "distinct_id": previous}, properties


def _capture(operation: Operation, attributes: Mapping[str, Any], new_id: NewId) -> Built:
    name = attributes.get(schema.EVENT)
    if not name or not isinstance(name, str):
        raise Skipped("no_event", "posthog.capture without posthog.event")
    name = _id_text(name, "event name", operation)
    body = operation.body
    return _event(name, operation, attributes, dict(body) if _is_map(body) else {}, new_id)


def _exception(operation: Operation, attributes: Mapping[str, Any], new_id: NewId) -> Built:
    """``$exception``: the body's ``$exception_list`` (``capture_exception``'s records), else one
    read from OTel's ``exception.*`` attributes (on the record, or among a span event's properties)."""
    body = operation.body
    properties = dict(body) if _is_map(body) else {}
    if "$exception_list" not in properties:
        from ._exceptions.stacktrace import exception_properties  # compiles its patterns: on this path only

        source = {**properties, **attributes}
        found = exception_properties(source, handled=True)
        if found is None:
            raise Skipped(
                "no_exception", "posthog.exception without $exception_list, exception.type or exception.message"
            )
        for key in (schema.EXCEPTION_TYPE, schema.EXCEPTION_MESSAGE, schema.EXCEPTION_STACKTRACE):
            properties.pop(key, None)
        properties.update(found)
    properties.setdefault("$exception_level", "error")
    return _event("$exception", operation, attributes, properties, new_id)


def _event(
    name: str, operation: Operation, attributes: Mapping[str, Any], properties: Dict[str, Any], new_id: NewId
) -> Built:
    """A captured event's groups and person (personless without one, as PostHog's SDK)."""
    groups = {
        _id_text(key[len(schema.GROUPS_PREFIX) :], "group type", operation): _id_text(value, "group key", operation)
        for key, value in attributes.items()
        if key.startswith(schema.GROUPS_PREFIX)
    }
    if groups:  # a $groups map in the body (written by hand, or by another SDK) joins them
        named: Any = properties.get("$groups")
        properties["$groups"] = {**named, **groups} if _is_map(named) else groups
    person = _distinct_id(operation)
    if person is None:
        person = new_id()
        properties.setdefault("$process_person_profile", False)
    return {"event": name, "distinct_id": person}, properties


_BUILDERS: Dict[str, Builder] = {
    schema.SET: _person_update("set"),
    schema.SET_ONCE: _person_update("set_once"),
    schema.UNSET: _unset,
    schema.GROUP_IDENTIFY: _group_identify,
    schema.ALIAS: _alias,
    schema.CAPTURE: _capture,
    schema.EXCEPTION: _exception,
}
_EVENTS = frozenset({schema.CAPTURE, schema.EXCEPTION})


def _distinct_id(operation: Operation) -> Optional[str]:
    """``posthog.distinct_id``, then ``user.id``, ``enduser.id``; on the record, then the resource."""
    value = _first(operation.attributes, _DISTINCT_ID_KEYS)
    if value is None:
        value = _first(operation.resource, _DISTINCT_ID_KEYS)
    if value is None:
        return None
    return _id_text(value, "distinct id", operation) or None


_DISTINCT_ID_KEYS = (schema.DISTINCT_ID, *schema.DISTINCT_ID_FALLBACKS)
_SESSION_KEYS = (schema.SESSION_ID, *schema.SESSION_ID_FALLBACKS)


def _is_map(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)  # the ABC check only for other kinds


def _id_text(value: Any, what: str, operation: Operation) -> str:
    """An id as text, by the one rule of ``_text``: an id that cannot be sent skips the record."""
    try:
        return as_text(value)
    except Unusable as problem:
        raise Skipped("invalid_id", "%s with a %s that %s" % (operation.name, what, problem)) from None


def _first(mapping: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        value = mapping.get(key)
        if value is not None and value != "":
            return value
    return None


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _valid_uuid(value: Any) -> Optional[str]:
    """The value as a canonical uuid (lowercase, hyphenated), None if it is not a uuid.

    Our own records carry the canonical form, which a regex accepts 10x cheaper than
    ``UUID()``; any other form ``UUID()`` reads (braces, ``urn:uuid:``, upper case, no
    hyphens) is rewritten, so that every event carries PostHog's form.
    """
    if not isinstance(value, str):
        return None
    if _CANONICAL_UUID.fullmatch(value):
        return value
    try:
        return str(_uuid.UUID(value))
    except ValueError:
        return None


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def iso_timestamp(time_unix_nano: int) -> str:
    """``2024-01-15T10:30:00.123456+00:00``: exact to the microsecond, as PostHog's SDK writes it
    (``datetime.isoformat``, which leaves out a zero fraction). A batch's records mostly share
    their second, so its text is kept from one record to the next."""
    global _last_second
    seconds, micros = divmod(time_unix_nano // 1000, 1_000_000)
    second, text = _last_second
    if second != seconds:
        text = (_EPOCH + _dt.timedelta(seconds=seconds)).isoformat()[:-6]  # without "+00:00"
        _last_second = (seconds, text)
    return "%s.%06d+00:00" % (text, micros) if micros else text + "+00:00"


_last_second: Tuple[Optional[int], str] = (None, "")  # (a second since the epoch, its text)


def _timestamp(operation: Operation) -> str:
    """``posthog.timestamp`` when the record has it (times OTLP cannot hold), else the record's time."""
    text = operation.attributes.get(schema.TIMESTAMP)
    if text is None:
        return iso_timestamp(operation.time_unix_nano)
    try:
        moment = _dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.timezone.utc)
        return moment.astimezone(_dt.timezone.utc).isoformat()
    except (ValueError, OverflowError):
        raise Skipped("invalid_timestamp", "%s with an invalid %s" % (operation.name, schema.TIMESTAMP)) from None
