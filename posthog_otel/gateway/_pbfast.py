"""PostHog operations' log records read in few Python steps; anything unusual the official way.

Read with the official classes, a record costs a Python object per ``KeyValue`` and per
``AnyValue`` and an attribute lookup per field (upb's wrappers): at 15 values a record, most
of a gateway worker's CPU. Here upb parses the record against a private copy of its schema
in which a ``KeyValue`` list and an array's values are ``repeated bytes``: the same wire
format, so upb still splits the record (in C) and checks its string fields, but hands each
pair over as its bytes. A pair in the common shape (its key, then its value, lengths under
128) is read with a few byte comparisons, and a value by its first byte: a string, a small
int, a bool, a double, a map or a list (each its one field, to its end). Other pairs and
values are parsed by the same private schema, one message at a time; such a parse must write
back to the size it was read from, or something was dropped unread (a value that a later
field of its ``oneof`` replaced: protobuf still refuses a bad string inside it).

**Exact, or not at all.** Every rule here reads what protobuf reads or raises ``Unusual``,
as does anything unexpected (a string that is not UTF-8, a pair cut short, a record that is
not an operation, values nested deeper than ``MAX_DEPTH``): ``_otlp`` then reads the record
with the official classes, which also decide whether it is malformed, and counts its objects
again (what this module counted is given back). ``tests/test_gateway_pbfast.py`` holds the
two to the same operations, refusals and counts, on generated requests well-formed or not.

**A cache of pairs.** A batch's records repeat most of their pairs byte for byte (the event
name, the enum-like properties, flags). A pair in the common shape whose value is a scalar
(or a flat list of them) is kept with its decoded key and value, keyed by its bytes, in two
generations of up to ``CACHE_PAIRS`` pairs of at most ``CACHE_PAIR_BYTES`` (``_keep``): a pair
seen before costs one dictionary look-up. The same bytes always decode to the same key and
value, and only immutable values are shared (a list is copied from a tuple).
"""

from __future__ import annotations

import math
import struct
from typing import Any, Dict, List, Optional, Tuple

from .. import _schema as schema

#: Values nested deeper than this (maps and lists) are read the official way: well inside
#: protobuf's own limit of 100 messages deep (a map is three: AnyValue, KeyValueList,
#: KeyValue), past which it refuses the record.
MAX_DEPTH = 24
#: Pairs each of the cache's two generations holds at most, and the largest pair it keeps, in bytes.
CACHE_PAIRS = 4096
CACHE_PAIR_BYTES = 160

EVENT_NAME_ATTRIBUTE = "event.name"


class Unusual(Exception):
    """The record is not one this module reads: read it with the official classes.

    Raised new each time: an instance raised again keeps the traceback of every raise before
    (each frame, with the record's bytes), so a shared one would grow without bound."""


# --- the private schema: OTLP's LogRecord, with KeyValue lists and array values as bytes ------


def _schema_file() -> Any:
    """OTLP's ``logs.proto``/``common.proto`` field numbers and types, except that the repeated
    ``KeyValue`` and ``AnyValue`` fields are ``bytes``: the same wire format (length-delimited)."""
    from google.protobuf import descriptor_pb2

    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="posthog_otel/gateway/otlp_fast.proto",
                                              package="posthog_otel.fast", syntax="proto3")  # fmt: skip

    def message(name: str, fields: List[Tuple[int, str, int, str]], oneof: Optional[str] = None) -> None:
        out = file.message_type.add(name=name)
        if oneof:
            out.oneof_decl.add(name=oneof)
        for number, field_name, kind, of in fields:
            repeated = field_name.startswith("*")
            added = out.field.add(name=field_name.lstrip("*"), number=number, type=kind,
                                  label=field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL)  # fmt: skip
            if of:
                added.type_name = ".posthog_otel.fast." + of
            if oneof:
                added.oneof_index = 0

    text, raw, nested = field.TYPE_STRING, field.TYPE_BYTES, field.TYPE_MESSAGE
    message("KeyValueList", [(1, "*values", raw, "")])
    message("ArrayValue", [(1, "*values", raw, "")])
    message("AnyValue", [(1, "string_value", text, ""), (2, "bool_value", field.TYPE_BOOL, ""),
                         (3, "int_value", field.TYPE_INT64, ""), (4, "double_value", field.TYPE_DOUBLE, ""),
                         (5, "array_value", nested, "ArrayValue"), (6, "kvlist_value", nested, "KeyValueList"),
                         (7, "bytes_value", raw, "")], oneof="value")  # fmt: skip
    message("KeyValue", [(1, "key", text, ""), (2, "value", nested, "AnyValue")])
    message("LogRecord", [(1, "time_unix_nano", field.TYPE_FIXED64, ""), (2, "severity_number", field.TYPE_INT32, ""),
                          (3, "severity_text", text, ""), (5, "*body", raw, ""), (6, "*attributes", raw, ""),
                          (7, "dropped_attributes_count", field.TYPE_UINT32, ""), (8, "flags", field.TYPE_FIXED32, ""),
                          (9, "trace_id", raw, ""), (10, "span_id", raw, ""),
                          (11, "observed_time_unix_nano", field.TYPE_FIXED64, ""), (12, "event_name", text, "")])  # fmt: skip
    return file


def _load() -> None:
    """The private schema's classes, on first use (``import posthog_otel.gateway`` needs no protobuf)."""
    global _LogRecord, _KeyValue, _AnyValue, _Values, _DecodeError
    from google.protobuf import descriptor_pool
    from google.protobuf.message import DecodeError
    from google.protobuf.message_factory import GetMessageClass

    pool = descriptor_pool.DescriptorPool()  # private: nothing else sees these names
    pool.Add(_schema_file())
    _KeyValue, _AnyValue = (GetMessageClass(pool.FindMessageTypeByName("posthog_otel.fast." + name))
                            for name in ("KeyValue", "AnyValue"))  # fmt: skip
    _Values = GetMessageClass(pool.FindMessageTypeByName("posthog_otel.fast.ArrayValue"))
    _DecodeError = DecodeError
    _LogRecord = GetMessageClass(pool.FindMessageTypeByName("posthog_otel.fast.LogRecord"))  # last: the flag


_LogRecord: Any = None
_KeyValue: Any = None
_AnyValue: Any = None
_Values: Any = None
_DecodeError: Any = None
_DOUBLE = struct.Struct("<d").unpack_from
_OPERATIONS = schema.OPERATIONS


# --- reading ------------------------------------------------------------------------------------


def read(data: bytes, spend: Any) -> Tuple[str, Dict[str, Any], Any, int, bytes, bytes]:
    """(name, attributes, body, time or observed time, trace id, span id) of an operation's record;
    ``Unusual`` for anything else. ``spend(n)`` counts the objects of each list before it is walked."""
    if _LogRecord is None:
        _load()
    try:
        record = _LogRecord.FromString(data)
        name = record.event_name
        if name and name not in _OPERATIONS:
            raise Unusual()  # before its attributes are walked: the official reader may skip them
        pairs = record.attributes
        spend(len(pairs))
        attributes = _pairs(pairs, {}, 0, spend)
        name = name or attributes.get(EVENT_NAME_ATTRIBUTE)
        if type(name) is not str or name not in _OPERATIONS:
            raise Unusual()  # not an operation: the official reader says what it is
        bodies = record.body
        if len(bodies) > 1:  # protobuf merges them
            raise Unusual()
        body = _value(bodies[0], 1, spend) if bodies else None
        return (name, attributes, body, record.time_unix_nano or record.observed_time_unix_nano, record.trace_id,
                record.span_id)  # fmt: skip
    except (_DecodeError, UnicodeDecodeError, IndexError, RecursionError):  # malformed, or another shape
        raise Unusual() from None


def _pairs(pairs: Any, out: Dict[str, Any], depth: int, spend: Any) -> Dict[str, Any]:
    """``KeyValue`` messages, each as its bytes, into ``out`` (a later key wins, as protobuf's)."""
    cache = _cache
    for raw in pairs:
        known = cache.get(raw)
        if known is None:
            known = _older.get(raw)
            if known is not None:  # still in use: kept in the current generation
                _keep(raw, known)
        if known is not None:
            value = known[1]
            if type(value) is tuple:  # a list: a copy, counted as when it was read
                spend(len(value))
                value = list(value)
            out[known[0]] = value
            continue
        size = raw[1]
        start = size + 4  # the value's first byte: after 0x0A, size, the key, 0x12 and the value's size
        value_size = raw[start - 1]
        if (
            raw[0] == 0x0A
            and size < 0x80
            and raw[start - 2] == 0x12
            and value_size < 0x80
            and value_size + start == len(raw)
        ):
            key = raw[2 : start - 2].decode()
            if value_size > 1 and raw[start] == 0x0A and raw[start + 1] + 2 == value_size:  # a string, most values
                value = raw[start + 2 :].decode()
            else:
                value = _value(raw[start:], depth, spend)
            out[key] = value
            if len(raw) <= CACHE_PAIR_BYTES:
                _remember(raw, key, value)
        else:  # another shape (fields in another order, repeated, unknown; long): the schema's way
            pair = _KeyValue.FromString(raw)
            if pair.ByteSize() != len(raw):
                raise Unusual()  # see _parsed_value
            out[pair.key] = _message_value(pair.value, depth, spend)
    return out


def _remember(raw: bytes, key: str, value: Any) -> None:
    kind = type(value)
    if kind is list:
        if any(type(item) not in _SCALARS for item in value):
            return
        value = tuple(value)
    elif kind not in _SCALARS:
        return
    _keep(raw, (key, value))


def _keep(raw: bytes, entry: Tuple[str, Any]) -> None:
    """Two generations: when the current one is full it becomes the older one (the one before
    is dropped), and a pair found in the older one is kept again. So the pairs that repeat
    stay, while those seen once (an id, a time) pass through: at most 2 x ``CACHE_PAIRS``."""
    global _cache, _older
    if len(_cache) >= CACHE_PAIRS:
        _older, _cache = _cache, {}
    _cache[raw] = entry


_SCALARS = frozenset({str, int, float, bool, type(None)})
_cache: Dict[bytes, Tuple[str, Any]] = {}
_older: Dict[bytes, Tuple[str, Any]] = {}


def forget() -> None:
    """Empty the cache of pairs (for tests: a cold start)."""
    _cache.clear()
    _older.clear()


def _value(raw: bytes, depth: int, spend: Any) -> Any:
    """One ``AnyValue`` as its bytes: by its first byte when it holds one field to its end."""
    size = len(raw)
    if size == 0:
        return None
    tag = raw[0]
    if tag == 0x0A:
        if raw[1] < 0x80 and raw[1] + 2 == size:
            return raw[2:].decode()
    elif tag == 0x18:  # int64, one or two bytes of varint (under 16384)
        if size == 2 and raw[1] < 0x80:
            return raw[1]
        if size == 3 and raw[1] >= 0x80 and raw[2] < 0x80:
            return (raw[1] & 0x7F) | (raw[2] << 7)
    elif tag == 0x21:
        if size == 9:
            (number,) = _DOUBLE(raw, 1)
            return number if math.isfinite(number) else None  # as the property rules: NaN, inf -> null
    elif tag == 0x10:
        if size == 2 and raw[1] < 0x80:
            return raw[1] != 0
    elif tag == 0x32 or tag == 0x2A:  # a map or a list, the one field to the end
        inner = _single_field(raw, size)
        if inner is not None:
            if depth >= MAX_DEPTH:
                raise Unusual()
            items = _Values.FromString(inner).values
            spend(len(items))
            if tag == 0x32:
                return _pairs(items, {}, depth + 1, spend)
            return [_value(item, depth + 1, spend) for item in items]
    return _parsed_value(raw, depth, spend)


def _single_field(raw: bytes, size: int) -> Optional[bytes]:
    """What follows a length-delimited field's tag when it ends where ``raw`` does (its length
    in one or two bytes), else None."""
    length = raw[1]
    if length < 0x80:
        return raw[2:] if length + 2 == size else None
    if size > 2 and raw[2] < 0x80 and (length & 0x7F | raw[2] << 7) + 3 == size:
        return raw[3:]
    return None


def _parsed_value(raw: bytes, depth: int, spend: Any) -> Any:
    """An ``AnyValue`` in any other shape, parsed by the private schema. Protobuf parses every
    field and keeps the last of a ``oneof``; the private schema leaves a list's values unparsed,
    so a value that another one replaced could hide what protobuf refuses (a string that is not
    UTF-8). Whatever the parse did not keep makes it smaller when written again: then the
    official reader decides."""
    value = _AnyValue.FromString(raw)
    if value.ByteSize() != len(raw):
        raise Unusual()
    return _message_value(value, depth, spend)


def _message_value(value: Any, depth: int, spend: Any) -> Any:
    """One parsed ``AnyValue`` (of the private schema)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind is None:
        return None
    if kind == "kvlist_value" or kind == "array_value":
        if depth >= MAX_DEPTH:
            raise Unusual()
        items = getattr(value, kind).values
        spend(len(items))
        if kind == "kvlist_value":
            return _pairs(items, {}, depth + 1, spend)
        return [_value(item, depth + 1, spend) for item in items]
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else None
    if kind == "bytes_value":  # UTF-8 text; other bytes are counted and said by the official reader
        return value.bytes_value.decode()
    return getattr(value, kind)  # int_value, bool_value
