"""The steps every operation shares: ids as text, the distinct id from the argument or the
context, groups, and the attributes every record carries before the emitter takes it.

Below the operations (``_emit``) and the feature modules that emit or resolve a person too
(``_unset``, exception capture, feature flags), so none of them imports the operations.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Mapping
from typing import Any, Dict, Optional, Union

from . import _baggage
from . import _schema as schema
from ._context import RefusedId, _Scope, context_distinct_id, context_session_id
from ._emitter import _Emitter
from ._envelope import new_uuid7, operation_time, operation_uuid
from ._guard import Dropped, report_drop
from ._log import count_drop, warn_limited
from ._text import Unusable, as_text, describe

Timestamp = Union[_dt.datetime, str, None]


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
