"""Property values: turn whatever the application passes into JSON-ready, flat maps.

This runs on the caller's thread at emit time, for two reasons: the record's body must
be a snapshot (the SDK keeps it by reference, so later mutations would leak into the
export), and it must hold only OpenTelemetry ``AnyValue`` types so that any other
exporter on the same provider can encode it.  The common case (a small flat dict of
strings and numbers) takes one loop of ``type()`` lookups.

The value rules (``docs/schema.md`` has the full table) follow PostHog's own SDK,
except where the seed document asks otherwise: nested maps are flattened with ``.``
(``{"a": {"b": 1}}`` -> ``{"a.b": 1}``) and values that cannot be serialized are
dropped, with a rate-limited warning and a counted drop, instead of becoming ``null``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import math
import numbers
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any, Dict, FrozenSet, List, Optional

from ._log import count_drop, warn_limited

#: Deeper nesting than this is dropped (it is almost always a cycle or a mistake).
MAX_DEPTH = 20

_PLAIN = frozenset({str, int, bool, type(None)})
_SEQUENCES = (list, tuple, set, frozenset)
_DROP = object()


def sanitize_properties(
    properties: Any, *, what: str = "properties", keep_nested: FrozenSet[str] = frozenset()
) -> Dict[str, Any]:
    """Return a new flat dict of JSON-ready values built from ``properties``.

    Keys in ``keep_nested`` whose value is a map keep it as a (sanitized, flat) map
    instead of being flattened into the parent: ``$set`` inside a capture's properties
    must reach PostHog as an object.
    """
    if type(properties) is dict:  # fast path: a flat dict of plain values, copied as is
        for key, value in properties.items():
            kind = type(value)
            if type(key) is not str or (kind not in _PLAIN and (kind is not float or not math.isfinite(value))):
                break
        else:
            return properties.copy()
    out: Dict[str, Any] = {}
    mapping = _as_mapping(properties)
    if mapping is None:
        if properties is not None:
            _dropped(what, type(properties), "is not a map of properties")
        return out
    _flatten_into(out, "", mapping, what, 0, {id(properties)}, keep_nested)
    return out


def _flatten_into(
    out: Dict[str, Any],
    prefix: str,
    mapping: Mapping,
    what: str,
    depth: int,
    path: set,
    keep_nested: FrozenSet[str] = frozenset(),
) -> None:
    for key, value in mapping.items():
        name = prefix + (key if type(key) is str else _key(key))
        kind = type(value)
        if kind in _PLAIN:
            out[name] = value
        elif kind is float:
            out[name] = value if math.isfinite(value) else None
        else:
            nested = value if kind is dict else _as_mapping(value)
            if nested is None:
                converted = _convert(value, what, name, depth, path)
                if converted is not _DROP:
                    out[name] = converted
            elif depth >= MAX_DEPTH or id(value) in path:
                _dropped(what, kind, "is nested too deeply or refers to itself", name)
            elif depth == 0 and name in keep_nested:
                path.add(id(value))
                inner: Dict[str, Any] = {}
                _flatten_into(inner, "", nested, what, depth + 1, path)
                out[name] = inner
                path.discard(id(value))
            else:
                path.add(id(value))
                _flatten_into(out, name + ".", nested, what, depth + 1, path)
                path.discard(id(value))


def _convert(value: Any, what: str, name: str, depth: int, path: set) -> Any:
    """Convert one non-map value; ``_DROP`` when it has no JSON form."""
    if isinstance(value, enum.Enum):
        inner = value.value
        return inner if type(inner) in _PLAIN else _convert(inner, what, name, depth, path)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, float):
        return int(value)
    if isinstance(value, (numbers.Real, decimal.Decimal)):
        try:
            number = float(value)
        except (ValueError, OverflowError, TypeError):  # Decimal('sNaN') refuses float()
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            _dropped(what, type(value), "is not valid UTF-8", name)
            return _DROP
    if isinstance(value, _SEQUENCES) or _is_deque(value):
        if depth >= MAX_DEPTH or id(value) in path:
            _dropped(what, type(value), "is nested too deeply or refers to itself", name)
            return _DROP
        path.add(id(value))
        items = _convert_list(value, what, name, depth + 1, path)
        path.discard(id(value))
        return items
    mapping = _as_mapping(value)
    if mapping is not None:  # a map inside a list: kept as a (flattened) map
        if depth >= MAX_DEPTH or id(value) in path:
            _dropped(what, type(value), "is nested too deeply or refers to itself", name)
            return _DROP
        flat: Dict[str, Any] = {}
        path.add(id(value))
        _flatten_into(flat, "", mapping, what, depth + 1, path)
        path.discard(id(value))
        return flat
    _dropped(what, type(value), "cannot be serialized", name)
    return _DROP


def _convert_list(values: Any, what: str, name: str, depth: int, path: set) -> List[Any]:
    items: List[Any] = []
    for index, item in enumerate(values):
        kind = type(item)
        if kind in _PLAIN:
            items.append(item)
        elif kind is float:
            items.append(item if math.isfinite(item) else None)
        else:
            converted = _convert(item, what, "%s[%d]" % (name, index), depth, path)
            if converted is not _DROP:
                items.append(converted)
    return items


def _as_mapping(value: Any) -> Optional[Mapping]:
    """A map view of ``value``: itself, a dataclass's fields, or a pydantic model's dump."""
    if isinstance(value, Mapping):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    dump = getattr(type(value), "model_dump", None)  # pydantic v2
    if callable(dump) and not isinstance(value, type):
        try:
            result = value.model_dump()
        except Exception:  # a broken model is just an unserializable value
            return None
        return result if isinstance(result, Mapping) else None
    return None


def _is_deque(value: Any) -> bool:
    return isinstance(value, deque)


def _key(key: Any) -> str:
    try:
        return str(key)
    except Exception:
        return "<unprintable key>"


def _dropped(what: str, kind: type, why: str, name: Optional[str] = None) -> None:
    count_drop("invalid_property")
    if name is None:
        warn_limited("property:" + why, "posthog_otel: dropped %s: a %s %s", what, kind.__name__, why)
    else:
        warn_limited(
            "property:" + why,
            "posthog_otel: dropped %s value %r: a %s %s",
            what,
            name,
            kind.__name__,
            why,
        )
