"""OTLP logs requests in, ``Operation`` tuples out: the same input the exporter's mapping reads.

Pure: no I/O, no clock (the time of receipt comes in as an argument). Two readers, one per
OTLP/HTTP encoding, produce identical operations for the same request (a property test
holds them to it):

- **protobuf** (``application/x-protobuf``), split at its records here; an operation's record
  in the common shape is read by ``_pbfast`` (the same result, held to it by a differential
  property test), any other record by the official ``opentelemetry-proto`` classes, which
  also decide whether it is malformed;
- **JSON** (``application/json``), walked as plain dicts: OTLP/JSON writes trace and span
  ids as hex (not protobuf-JSON's base64) and 64-bit integers as strings (numbers are
  accepted too), and field names in lowerCamelCase (protobuf's own names are accepted too,
  as protobuf's JSON parser does).

Only records whose ``event_name`` is one of the schema's operations are converted further
(body, attributes, resource); application logs that share the pipeline cost one field read.
With ``exceptions`` (the delivery settings' ``capture_exceptions``), an application's record
with ``exception.*`` attributes becomes a ``posthog.exception`` operation too (rate-limited
and folded with its duplicates: ``posthog_otel._exceptions.records``).
An SDK without ``event_name`` (OTLP added it in 2025) may carry the name in the
``event.name`` attribute, its predecessor in the semantic conventions.

**Bounded work.** A few KiB of gzip can inflate to megabytes of empty objects, each of
which costs far more to decode than its two bytes. So a request may decode to at most
``Limits.max_objects`` objects (``TooLarge``: 413) within ``Limits.seconds``
(``TooSlow``: 503), counted before they are walked: JSON by its ``{`` and ``[`` before
parsing; protobuf by splitting the request at its records on the wire (each record is
then parsed on its own, at most ``MAX_RECORD_BYTES``, so no single parse holds the
whole body's objects) and by the length of each list before it is walked. A record whose
bytes do not hold ``posthog.`` cannot name an operation and is not parsed at all (so an
application log that is not valid protobuf inside is ignored rather than refused).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from .. import _schema as schema
from .._exceptions import records as exception_records
from .._exceptions.records import has_exception
from .._log import count_drop, warn_limited
from .._mapping import Operation, Skipped
from . import _pbfast

#: One log record (or resource) on the wire: a larger record is refused (PostHog takes no
#: event above 900 KiB anyway), without being parsed.
MAX_RECORD_BYTES = 1024 * 1024
#: What the bytes of every PostHog operation's record hold: its name, ``posthog.<operation>``.
_OPERATION_MARK = b"posthog."
#: What the bytes of an application's exception record hold (``exception.type``...): with
#: ``capture_exceptions``, such a record is parsed too.
_EXCEPTION_MARK = b"exception."

#: The attribute older SDKs (and the earlier Events API) put the event's name in.
EVENT_NAME_ATTRIBUTE = schema.EVENT_NAME_ATTRIBUTE


class Malformed(ValueError):
    """The body is not an OTLP logs request; the message says why (it is sent back)."""


class TooLarge(Malformed):
    """The request decodes to more objects than the gateway takes (413)."""


class TooSlow(Malformed):
    """Decoding the request took longer than the gateway allows (503)."""


class Limits:
    """What decoding one request may cost: objects, and seconds (from its start)."""

    __slots__ = ("max_objects", "left", "seconds", "deadline", "_ticks")

    def __init__(self, max_objects: int = 200_000, seconds: float = 1.0) -> None:
        self.max_objects = max_objects
        self.left = max_objects
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self._ticks = 0

    def spend(self, objects: int) -> None:
        self.left -= objects
        if self.left < 0:
            raise TooLarge("the request holds more than %d OTLP objects (POSTHOG_OTEL_GATEWAY_MAX_OBJECTS); send "
                           "smaller batches" % self.max_objects)  # fmt: skip
        self._ticks += 1
        if self._ticks & 63 == 0 and time.monotonic() > self.deadline:
            raise TooSlow("decoding the request took longer than %g s (POSTHOG_OTEL_GATEWAY_DECODE_TIMEOUT)"
                          % self.seconds)  # fmt: skip


class Decoded:
    """What a request held: PostHog operations, in the order the request lists them, how
    many log records it carried in all (the others are not PostHog's and are ignored), and
    the records refused before they were read (too large)."""

    __slots__ = ("operations", "records", "refused")

    def __init__(self, operations: List[Operation], records: int, refused: Optional[List[Skipped]] = None) -> None:
        self.operations = operations
        self.records = records
        self.refused = refused or []


# --- protobuf -------------------------------------------------------------------------------


def decode_protobuf(
    body: bytes, received_unix_nano: int, limits: Optional[Limits] = None, exceptions: bool = False
) -> Decoded:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    limits = limits or Limits()
    operations: List[Operation] = []
    refused: List[Skipped] = []
    records = 0
    try:
        for resource_logs in _messages(memoryview(body), 1, limits):  # ExportLogsServiceRequest.resource_logs
            resource_parts: List[bytes] = []
            scopes: List[memoryview] = []
            for number, value in _fields(resource_logs):
                if number == 1:  # ResourceLogs.resource (repeated on the wire: merged)
                    resource_parts.append(bytes(_length_delimited(value)))
                elif number == 2:  # ResourceLogs.scope_logs
                    scopes.append(_length_delimited(value))
            resource: Optional[Dict[str, Any]] = None
            for scope_logs in scopes:
                limits.spend(1)
                for record_view in _log_records(scope_logs, limits):
                    records += 1
                    if len(record_view) > MAX_RECORD_BYTES:
                        refused.append(Skipped("record_too_large", "a log record of %d bytes (at most %d)"
                                               % (len(record_view), MAX_RECORD_BYTES)))  # fmt: skip
                        continue
                    record_bytes = bytes(record_view)
                    if _OPERATION_MARK not in record_bytes and not (exceptions and _EXCEPTION_MARK in record_bytes):
                        continue  # neither an operation's name nor an exception's attributes: not parsed
                    read = _read_record(record_bytes, limits, exceptions)
                    if read is None:
                        continue
                    name, attributes, value, when, trace_id, span_id, severity = read
                    if resource is None:
                        resource = _pb_resource(Resource, resource_parts, limits)
                    fields = (attributes, value, when or received_unix_nano, _id_from_bytes(trace_id, 16, "trace_id"),
                              _id_from_bytes(span_id, 8, "span_id"), resource)  # fmt: skip
                    _add(operations, name, fields, severity)
    except (DecodeError, ValueError) as error:  # upb raises DecodeError; some builds ValueError
        if isinstance(error, Malformed):
            raise
        raise Malformed("not an OTLP ExportLogsServiceRequest (protobuf): %s" % (error or "cannot be parsed")) from None
    except RecursionError:
        raise Malformed("not an OTLP ExportLogsServiceRequest (protobuf): values nested too deeply") from None
    return Decoded(operations, records, refused)


#: (name, attributes, body, time or observed time, trace id, span id, severity) of one record.
_Read = Tuple[Any, Dict[str, Any], Any, int, bytes, bytes, int]


def _read_record(data: bytes, limits: Limits, exceptions: bool) -> Optional[_Read]:
    """A record that is an operation (or, with ``exceptions``, an exception), else None: in the
    common shape by ``_pbfast``, otherwise (and to refuse it when malformed) the official way."""
    left = limits.left
    try:
        return (*_pbfast.read(data, limits.spend), 0)  # the severity only matters to exceptions
    except (_pbfast.Unusual, TooLarge):  # TooLarge too: the official reader may find the record malformed first
        limits.left = left  # what it counted is counted again below
    record = _official_record(data)
    name: Any = record.event_name
    attributes = None
    if not name:
        attributes = _pb_attributes(record.attributes, limits)
        name = attributes.get(EVENT_NAME_ATTRIBUTE)
    if not _is_operation(name) and not exceptions:
        return None
    if attributes is None:
        attributes = _pb_attributes(record.attributes, limits)
    if not _is_operation(name) and not has_exception(attributes):
        return None
    value = _pb_value(record.body, limits) if record.HasField("body") else None
    when = record.time_unix_nano or record.observed_time_unix_nano
    return name, attributes, value, when, record.trace_id, record.span_id, record.severity_number


def _official_record(data: bytes) -> Any:
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

    return LogRecord.FromString(data)


def _is_operation(name: Any) -> bool:
    return isinstance(name, str) and name in schema.OPERATIONS  # an attribute's name may be a list: unhashable


def _pb_resource(resource_class: Any, parts: List[bytes], limits: Limits) -> Dict[str, Any]:
    data = b"".join(parts)
    if len(data) > MAX_RECORD_BYTES:
        raise TooLarge("an OTLP resource of %d bytes (at most %d)" % (len(data), MAX_RECORD_BYTES))
    return _pb_attributes(resource_class.FromString(data).attributes, limits)


# --- the protobuf wire format, as far as splitting a request at its records needs ---------


def _messages(data: memoryview, wanted: int, limits: Limits) -> Iterator[memoryview]:
    """The length-delimited values of field ``wanted`` (a repeated message), each counted."""
    for number, value in _fields(data):
        if number == wanted:
            limits.spend(1)
            yield _length_delimited(value)


def _log_records(data: memoryview, limits: Limits) -> Iterator[memoryview]:
    """``ScopeLogs.log_records``, each counted before it is read: ``_messages`` for the one field
    with hundreds of values a request, its common case without a call per field."""
    at, end = 0, len(data)
    spend = limits.spend
    while at < end:
        if data[at] != 0x12:  # another field (the scope, its schema URL, unknown ones): skipped
            at = _wire_field(data, at)[2]
            continue
        size, at = _varint(data, at + 1)
        if at + size > end:
            raise Malformed("not an OTLP ExportLogsServiceRequest (protobuf): truncated")
        spend(1)
        yield data[at : at + size]
        at += size


def _length_delimited(value: Any) -> memoryview:
    if not isinstance(value, memoryview):
        raise Malformed("not an OTLP ExportLogsServiceRequest (protobuf): a message field is not length-delimited")
    return value


def _fields(data: memoryview) -> Iterator[Tuple[int, Any]]:
    """(field number, value) of each field of one message: a memoryview for length-delimited
    values, an int (or None for fixed-size ones, which no field split here uses) otherwise."""
    at, end = 0, len(data)
    while at < end:
        number, value, at = _wire_field(data, at)
        yield number, value


def _wire_field(data: memoryview, at: int) -> Tuple[int, Any, int]:
    """The field at ``at``: (number, value as ``_fields`` gives it, where the next field starts)."""
    key, at = _varint(data, at)
    number, wire = key >> 3, key & 7
    if number == 0:
        raise Malformed("not an OTLP ExportLogsServiceRequest (protobuf): field number 0")
    if wire == 0:
        value, at = _varint(data, at)
        return number, value, at
    if wire == 2:
        size, at = _varint(data, at)
        if at + size > len(data):
            raise Malformed("not an OTLP ExportLogsServiceRequest (protobuf): truncated")
        return number, data[at : at + size], at + size
    if wire == 1 or wire == 5:
        at += 8 if wire == 1 else 4
        if at > len(data):
            raise Malformed("not an OTLP ExportLogsServiceRequest (protobuf): truncated")
        return number, None, at
    # groups (3, 4) are not used by OTLP; 6 and 7 do not exist
    raise Malformed("not an OTLP ExportLogsServiceRequest (protobuf): wire type %d" % wire)


def _varint(data: memoryview, at: int) -> Tuple[int, int]:
    end = len(data)
    if at + 1 < end and data[at + 1] < 0x80:  # one or two bytes: every size of a record under 16 KiB
        first = data[at]
        if first < 0x80:
            return first, at + 1
        return (first & 0x7F) | (data[at + 1] << 7), at + 2
    value = shift = 0
    while True:
        if at >= end or shift > 63:
            raise Malformed("not an OTLP ExportLogsServiceRequest (protobuf): a bad varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _pb_attributes(pairs: Any, limits: Limits) -> Dict[str, Any]:
    limits.spend(len(pairs))
    out = {}
    for pair in pairs:  # _pb_value inlined for the common kinds: a call less per value adds up here
        value = pair.value
        kind = value.WhichOneof("value")
        if kind == "string_value":
            out[pair.key] = value.string_value
        elif kind == "int_value" or kind == "bool_value":
            out[pair.key] = getattr(value, kind)
        else:
            out[pair.key] = None if kind is None else _PB_READERS[kind](value, limits)
    return out


def _pb_value(value: Any, limits: Limits) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":  # the common case first
        return value.string_value
    if kind is None:
        return None
    return _PB_READERS[kind](value, limits)


def _pb_double(value: Any, limits: Limits) -> Any:
    number = value.double_value
    return number if math.isfinite(number) else None  # as the property rules: NaN, inf -> null


def _pb_array(value: Any, limits: Limits) -> List[Any]:
    items = value.array_value.values
    limits.spend(len(items))
    return [_pb_value(item, limits) for item in items]


_PB_READERS: Dict[str, Callable[[Any, Limits], Any]] = {
    "int_value": lambda v, _: v.int_value,
    "bool_value": lambda v, _: v.bool_value,
    "double_value": _pb_double,
    "kvlist_value": lambda v, limits: _pb_attributes(v.kvlist_value.values, limits),
    "array_value": _pb_array,
    "bytes_value": lambda v, _: _bytes_text(v.bytes_value),
}


def _id_from_bytes(raw: bytes, size: int, field: str) -> int:
    if not raw:
        return 0
    if len(raw) != size:
        _bad_id(field, "%d bytes, not %d" % (len(raw), size))
        return 0
    return int.from_bytes(raw, "big")


# --- JSON -----------------------------------------------------------------------------------


def decode_json(
    body: bytes, received_unix_nano: int, limits: Optional[Limits] = None, exceptions: bool = False
) -> Decoded:
    limits = limits or Limits()
    limits.spend(body.count(b"{") + body.count(b"["))  # at least every object and array (strings may hold more)
    try:
        text = body.decode("utf-8")  # strictly: json.loads(bytes) would let encoded surrogates through
        document = json.loads(text)
    except UnicodeDecodeError:
        raise Malformed("not UTF-8 text (OTLP/JSON)") from None
    except ValueError as error:
        raise Malformed("not JSON: %s" % error) from None
    except RecursionError:  # nested deeper than Python's stack: protobuf's parser stops at 100 levels too
        raise Malformed("not OTLP/JSON: nested too deeply") from None
    try:
        return _json_request(document, received_unix_nano, exceptions)
    except Malformed:
        raise
    except RecursionError:
        raise Malformed("not an OTLP/JSON logs request: values nested too deeply") from None
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as error:
        raise Malformed("not an OTLP/JSON logs request: %s" % _describe(error)) from None


def _json_request(document: Any, received_unix_nano: int, exceptions: bool = False) -> Decoded:
    if not isinstance(document, dict):
        raise Malformed("not an OTLP/JSON logs request: the body is not a JSON object")
    operations: List[Operation] = []
    records = 0
    for resource_logs in _list(document, "resourceLogs", "resource_logs"):
        resource: Optional[Dict[str, Any]] = None
        for scope_logs in _list(resource_logs, "scopeLogs", "scope_logs"):
            log_records = _list(scope_logs, "logRecords", "log_records")
            records += len(log_records)
            for record in log_records:
                name: Any = _field(record, "eventName", "event_name")
                attributes = None
                if not name:
                    attributes = _json_attributes(record)
                    name = attributes.get(EVENT_NAME_ATTRIBUTE)
                operation = isinstance(name, str) and name in schema.OPERATIONS
                if not (operation or exceptions):
                    continue
                if attributes is None:
                    attributes = _json_attributes(record)
                if not (operation or has_exception(attributes)):
                    continue
                if resource is None:
                    resource = _json_attributes(_field(resource_logs, "resource", "resource") or {})
                body = record.get("body")
                fields = (
                    attributes,
                    None if body is None else _json_value(body),
                    _uint64(_field(record, "timeUnixNano", "time_unix_nano"))
                    or _uint64(_field(record, "observedTimeUnixNano", "observed_time_unix_nano"))
                    or received_unix_nano,
                    _id_from_hex(_field(record, "traceId", "trace_id"), 16, "traceId"),
                    _id_from_hex(_field(record, "spanId", "span_id"), 8, "spanId"),
                    resource,
                )
                _add(operations, name, fields, _field(record, "severityNumber", "severity_number"))
    return Decoded(operations, records)


def _field(message: Any, camel: str, snake: str) -> Any:
    if not isinstance(message, dict):
        raise Malformed("not an OTLP/JSON logs request: expected an object where %s is" % camel)
    value = message.get(camel)
    return message.get(snake) if value is None else value


def _list(message: Any, camel: str, snake: str) -> List[Any]:
    value = _field(message, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed("not an OTLP/JSON logs request: %s is not a list" % camel)
    return value


def _json_attributes(message: Any) -> Dict[str, Any]:
    return _json_pairs(_list(message, "attributes", "attributes"))


def _json_pairs(pairs: List[Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for pair in pairs:
        if not isinstance(pair, dict):
            raise Malformed("not an OTLP/JSON logs request: an attribute is not a {key, value} object")
        key = pair.get("key", "")  # protobuf's JSON leaves out fields at their default ("")
        if not isinstance(key, str):
            raise Malformed("not an OTLP/JSON logs request: a key is not a string")
        value = pair.get("value")
        out[key] = None if value is None else _json_value(value)
    return out


def _json_value(value: Any) -> Any:
    """An ``AnyValue`` object: exactly one of its fields, or none (an empty value)."""
    if not isinstance(value, dict):
        raise Malformed("not an OTLP/JSON logs request: a value is not an AnyValue object")
    if not value:
        return None
    ((kind, inner),) = value.items()  # ValueError (-> 400) when it holds several
    if kind == "stringValue" or kind == "string_value":
        if not isinstance(inner, str):
            raise Malformed("not an OTLP/JSON logs request: stringValue is not a string")
        return inner
    reader = _JSON_READERS.get(kind)
    if reader is None:
        raise Malformed("not an OTLP/JSON logs request: unknown AnyValue field %r" % kind[:40])
    return reader(inner)


def _json_int(inner: Any) -> int:
    if isinstance(inner, bool) or not isinstance(inner, (int, str)):
        raise Malformed("not an OTLP/JSON logs request: intValue is not an integer")
    number = int(inner)
    if not -(2**63) <= number < 2**63:
        raise Malformed("not an OTLP/JSON logs request: intValue is out of the int64 range")
    return number


def _json_double(inner: Any) -> Any:
    if isinstance(inner, bool) or not isinstance(inner, (int, float, str)):
        raise Malformed("not an OTLP/JSON logs request: doubleValue is not a number")
    number = float(inner)  # also "NaN", "Infinity", "-Infinity", as protobuf JSON writes them
    return number if math.isfinite(number) else None


def _json_bool(inner: Any) -> bool:
    if not isinstance(inner, bool):
        raise Malformed("not an OTLP/JSON logs request: boolValue is not true or false")
    return inner


def _json_kvlist(inner: Any) -> Dict[str, Any]:
    return _json_pairs(_list(inner, "values", "values"))


def _json_array(inner: Any) -> List[Any]:
    return [None if item is None else _json_value(item) for item in _list(inner, "values", "values")]


def _json_bytes(inner: Any) -> Any:
    try:
        return _bytes_text(base64.b64decode(inner, validate=True))
    except (binascii.Error, TypeError):
        raise Malformed("not an OTLP/JSON logs request: bytesValue is not base64") from None


_JSON_READERS: Dict[str, Callable[[Any], Any]] = {
    "intValue": _json_int,
    "doubleValue": _json_double,
    "boolValue": _json_bool,
    "kvlistValue": _json_kvlist,
    "arrayValue": _json_array,
    "bytesValue": _json_bytes,
    "int_value": _json_int,
    "double_value": _json_double,
    "bool_value": _json_bool,
    "kvlist_value": _json_kvlist,
    "array_value": _json_array,
    "bytes_value": _json_bytes,
}


def _uint64(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Malformed("not an OTLP/JSON logs request: a time is not an integer")
    number = int(value)
    if not 0 <= number < 2**64:
        raise Malformed("not an OTLP/JSON logs request: a time is out of the uint64 range")
    return number


def _id_from_hex(value: Any, size: int, field: str) -> int:
    if not value:
        return 0
    if not isinstance(value, str) or len(value) != 2 * size:
        _bad_id(field, "not %d hex digits" % (2 * size))
        return 0
    try:
        return int(value, 16)
    except ValueError:
        _bad_id(field, "not hex")
        return 0


# --- shared ---------------------------------------------------------------------------------


def _add(operations: List[Operation], name: Any, fields: Tuple[Any, ...], severity: Any) -> None:
    """An operation, or (``capture_exceptions``) an application's exception record as one."""
    if isinstance(name, str) and name in schema.OPERATIONS:
        operations.append(Operation(name, *fields))
        return
    found = exception_records.from_otlp(fields[0], fields[1], severity, *fields[2:])
    if found is not None:
        operations.append(found)


def _bytes_text(raw: bytes) -> Any:
    """``bytes`` values as posthog_otel sends them: UTF-8 text; anything else becomes null,
    counted (``invalid_property``) and said."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        count_drop("invalid_property")
        warn_limited("gateway:bytes", "posthog_otel gateway: a bytes value that is not UTF-8 text was sent as null")
        return None


def _bad_id(field: str, why: str) -> None:
    warn_limited("gateway:id:" + field, "posthog_otel gateway: a record's %s is ignored (%s)", field, why)


def _describe(error: BaseException) -> str:
    text = str(error)
    return "%s%s" % (type(error).__name__, ": " + text[:120] if text else "")


DECODERS: Mapping[str, Callable[[bytes, int, Optional[Limits], bool], Decoded]] = {
    "protobuf": decode_protobuf,
    "json": decode_json,
}
