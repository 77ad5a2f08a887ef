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
Text follows ``_text``'s rule (surrogates are refused, in keys and values alike), and
ints follow OTel's ``AnyValue`` (64-bit): a larger int is sent as a float, and one too
large even for a float (which no JSON reader could hold as a number) is dropped.
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
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Set, Union

from ._log import count_drop, warn_limited
from ._text import _SURROGATE, SURROGATES, Unusable, as_text, is_sendable

#: Deeper nesting than this is dropped (it is almost always a cycle or a mistake).
MAX_DEPTH = 20

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_isfinite = math.isfinite
_STR_KEYS = frozenset({str})
_SCALARS = frozenset({str, int, float, bool, type(None)})
_SEQUENCES = (list, tuple, set, frozenset)
_DROP = object()
_SURROGATE_SEARCH = _SURROGATE.search


def sanitize_properties(
    properties: Any, *, what: str = "properties", keep_nested: FrozenSet[str] = frozenset()
) -> Dict[str, Any]:
    """Return a new flat dict of JSON-ready values built from ``properties``.

    Keys in ``keep_nested`` whose value is a map keep it as a (sanitized, flat) map
    instead of being flattened into the parent: ``$set`` inside a capture's properties
    must reach PostHog as an object.
    """
    if type(properties) is dict:
        if _all_plain(properties):
            return properties.copy()  # the common case: a flat dict of plain values, copied as is
        out: Dict[str, Any] = {}
        _walk(out, "", properties, what, 0, {id(properties)}, keep_nested)
        return out
    out = {}
    mapping = _as_mapping(properties, what, None)
    if mapping is None:
        if properties is not None and mapping is not _DROP:
            _dropped(what, type(properties), "is not a map of properties")
        return out
    _flatten_into(out, "", mapping, what, 0, {id(properties)}, keep_nested)
    return out


def _all_plain(properties: Dict[Any, Any]) -> bool:
    """True when every key is ASCII text and every value is sent as it is (else: the full walk)."""
    try:
        if not "".join(properties).isascii():  # one pass in C over all the keys
            return False
    except TypeError:  # a key that is not text
        return False
    if not _STR_KEYS.issuperset(map(type, properties)):  # a str subclass (a str Enum) is converted
        return False
    for value in properties.values():
        kind = type(value)
        if kind is str:
            if not (value.isascii() or is_sendable(value)):
                return False
        elif kind is int:
            if not _INT_MIN <= value <= _INT_MAX:
                return False
        elif kind is float:
            if not _isfinite(value):
                return False
        elif kind is not bool and value is not None:
            return False
    return True


def _walk(
    out: Dict[str, Any],
    prefix: str,
    mapping: Dict[Any, Any],
    what: str,
    depth: int,
    path: Set[int],
    keep_nested: FrozenSet[str] = frozenset(),
) -> None:
    """``_flatten_into`` for a plain ``dict``, with the common value types inline.

    The same rules, in the same order (``tests/test_properties.py`` checks the two agree on
    any input): plain values and plain containers are handled here without a call per value,
    the rest goes through ``_entry``. This is the caller's thread's cost for every property
    that is not a flat scalar (a list, a nested map, a datetime), so it is kept tight.
    """
    for key, value in list(mapping.items()):  # a snapshot: another thread may change the map meanwhile
        if type(key) is str and (key.isascii() or _SURROGATE_SEARCH(key) is None):
            name = prefix + key
        else:
            try:
                name = prefix + as_text(key)
            except Unusable as problem:
                _dropped(what, type(key), "key " + str(problem), prefix + "<key>")
                continue
        kind = type(value)
        if kind is str:
            if value.isascii() or _SURROGATE_SEARCH(value) is None:
                out[name] = value
            else:
                _dropped(what, kind, SURROGATES, name)
        elif kind is int:
            if _INT_MIN <= value <= _INT_MAX:
                out[name] = value
            else:
                converted = _big_int(value, what, name)
                if converted is not _DROP:
                    out[name] = converted
        elif kind is float:
            out[name] = value if _isfinite(value) else None
        elif kind is bool or value is None:
            out[name] = value
        elif kind is dict:
            if depth >= MAX_DEPTH or id(value) in path:
                _dropped(what, kind, "is nested too deeply or refers to itself", name)
            elif depth == 0 and name in keep_nested:
                path.add(id(value))
                inner: Dict[str, Any] = {}
                _walk(inner, "", value, what, depth + 1, path)
                out[name] = inner
                path.discard(id(value))
            else:
                path.add(id(value))
                _walk(out, name + ".", value, what, depth + 1, path)
                path.discard(id(value))
        elif kind is list or kind is tuple:
            items = _sequence(value, what, name, depth, path)
            if items is not _DROP:
                out[name] = items
        else:
            converter = _EXACT.get(kind)
            try:
                if converter is not None:
                    out[name] = converter(value)
                    continue
            except Exception:  # its own methods failed (a broken tzinfo): the full path says so
                pass
            _entry(out, name, value, what, depth, path, keep_nested)


def _sequence(value: Any, what: str, name: str, depth: int, path: Set[int]) -> Any:
    """A list or tuple as a list: as it is when every item is a plain value (one loop, no
    call per item), else each item converted."""
    if depth >= MAX_DEPTH:  # the full walk's rule (which also says it)
        return _convert_object(value, what, name, depth, path)
    items = list(value)  # a snapshot, as the full walk takes
    for item in items:
        kind = type(item)
        if kind is str:
            if not (item.isascii() or _SURROGATE_SEARCH(item) is None):
                break
        elif kind is int:
            if not _INT_MIN <= item <= _INT_MAX:
                break
        elif kind is float:
            if not _isfinite(item):
                break
        elif kind is not bool and item is not None:
            break
    else:
        return items
    return _convert_object(value, what, name, depth, path)  # by the original: a cycle is told by its id


def _entry(out: Dict[str, Any], name: str, value: Any, what: str, depth: int, path: Set[int],
           keep_nested: FrozenSet[str]) -> None:  # fmt: skip
    """One property of any other kind: a map-like object is flattened, the rest converted."""
    kind = type(value)
    nested = _as_mapping(value, what, name)
    if nested is _DROP:
        return
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


def _isoformat(value: Union[_dt.date, _dt.time]) -> str:
    return value.isoformat()


#: Exact types (not subclasses, which take the full path) whose conversion is one call and
#: always gives a plain value: the values of the common road beside scalars.
_EXACT: Dict[type, Callable[[Any], str]] = {
    _dt.datetime: _isoformat,
    _dt.date: _isoformat,
    _dt.time: _isoformat,
    uuid.UUID: str,
}


def _flatten_into(
    out: Dict[str, Any],
    prefix: str,
    mapping: Mapping[Any, Any],
    what: str,
    depth: int,
    path: Set[int],
    keep_nested: FrozenSet[str] = frozenset(),
) -> None:
    for key, value in _items(mapping, what, prefix[:-1] or None):
        if type(key) is str and is_sendable(key):
            name = prefix + key
        else:
            try:
                name = prefix + as_text(key)
            except Unusable as problem:
                _dropped(what, type(key), "key " + str(problem), prefix + "<key>")
                continue
        kind = type(value)
        nested = None if kind in _SCALARS else value if kind is dict else _as_mapping(value, what, name)
        if nested is _DROP:
            continue
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


def _convert(value: Any, what: str, name: str, depth: int, path: Set[int]) -> Any:
    """Convert one non-map value; ``_DROP`` when it has no JSON form."""
    kind = type(value)
    if kind is str:
        return value if is_sendable(value) else _dropped(what, kind, SURROGATES, name)
    if kind is int:
        return value if _INT_MIN <= value <= _INT_MAX else _big_int(value, what, name)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is bool or value is None:
        return value
    if kind is dict:
        return _map_value(value, value, what, name, depth, path)
    try:
        return _convert_object(value, what, name, depth, path)
    except Exception as error:  # the value's own methods failed while we read it
        return _dropped(what, kind, "could not be read (%s)" % type(error).__name__, name)


def _convert_object(value: Any, what: str, name: str, depth: int, path: Set[int]) -> Any:
    if isinstance(value, enum.Enum):
        return _convert(value.value, what, name, depth, path)
    if isinstance(value, str):
        return _convert(str.__str__(value), what, name, depth, path)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, float):
        return _convert(int(value), what, name, depth, path)
    if isinstance(value, (numbers.Real, decimal.Decimal)):
        try:
            number = float(value)
        except (ValueError, OverflowError, TypeError):  # Decimal('sNaN') refuses float()
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return _convert(value.isoformat(), what, name, depth, path)
    if isinstance(value, uuid.UUID):
        return str(uuid.UUID(int=value.int))
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return _convert(bytes(value).decode("utf-8"), what, name, depth, path)
        except UnicodeDecodeError:
            return _dropped(what, type(value), "is not valid UTF-8", name)
    if isinstance(value, _SEQUENCES) or isinstance(value, deque):
        if depth >= MAX_DEPTH or id(value) in path:
            return _dropped(what, type(value), "is nested too deeply or refers to itself", name)
        path.add(id(value))
        items = [
            _convert(item, what, "%s[%d]" % (name, index), depth + 1, path) for index, item in enumerate(list(value))
        ]
        path.discard(id(value))
        return [item for item in items if item is not _DROP]
    mapping = _as_mapping(value, what, name)
    if mapping is None:
        return _dropped(what, type(value), "cannot be serialized", name)
    return mapping if mapping is _DROP else _map_value(value, mapping, what, name, depth, path)


def _map_value(value: Any, mapping: Mapping[Any, Any], what: str, name: str, depth: int, path: Set[int]) -> Any:
    """A map inside a list (or an enum's value): kept as a map, flattened inside."""
    if depth >= MAX_DEPTH or id(value) in path:
        return _dropped(what, type(value), "is nested too deeply or refers to itself", name)
    flat: Dict[str, Any] = {}
    path.add(id(value))
    _flatten_into(flat, "", mapping, what, depth + 1, path)
    path.discard(id(value))
    return flat


def _big_int(value: int, what: str, name: str) -> Any:
    try:
        return float(value)  # past 64 bits OTel cannot carry an int; JSON readers commonly read a float
    except OverflowError:
        return _dropped(what, int, "is too large for any JSON number", name)


def _items(mapping: Mapping[Any, Any], what: str, name: Optional[str]) -> List[Any]:
    """A map's items, read once; a map whose reading fails gives none (said and counted)."""
    if type(mapping) is dict:
        return list(mapping.items())
    try:
        return list(mapping.items())
    except Exception as error:
        _dropped(what, type(mapping), "could not be read (%s)" % type(error).__name__, name)
        return []


def _as_mapping(value: Any, what: str, name: Optional[str]) -> Any:
    """A map view of ``value`` (itself, a dataclass's fields, a pydantic model's dump), None
    when it is not map-like, ``_DROP`` when it is but reading it failed (said and counted)."""
    try:
        if isinstance(value, Mapping):
            return value
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        dump = getattr(type(value), "model_dump", None)  # pydantic v2
        if callable(dump) and not isinstance(value, type):
            result = value.model_dump()
            return result if isinstance(result, Mapping) else None
    except Exception as error:  # a broken model or field: an unserializable value
        return _dropped(what, type(value), "could not be read (%s)" % type(error).__name__, name)
    return None


def _dropped(what: str, kind: type, why: str, name: Optional[str] = None) -> Any:
    """Count and say one dropped value; returns ``_DROP`` so callers can return it."""
    count_drop("invalid_property")
    if name is None:
        warn_limited("property:%s:%s" % (what, why), "posthog_otel: dropped %s: a %s %s", what, kind.__name__, why)
    else:
        warn_limited(
            "property:%s:%s" % (what, why),
            "posthog_otel: dropped %s value %r: a %s %s",
            what,
            name,
            kind.__name__,
            why,
        )
    return _DROP
