"""OTLP logs requests in, ``Operation`` tuples out: the same input the exporter's mapping reads.

Pure: no I/O, no clock (the time of receipt comes in as an argument). Two readers, one per
OTLP/HTTP encoding, produce identical operations for the same request (a property test
holds them to it):

- **protobuf** (``application/x-protobuf``), parsed by the official ``opentelemetry-proto``
  classes, then walked;
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
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .. import _schema as schema
from .._exceptions import records as exception_records
from .._exceptions.records import has_exception
from .._log import count_drop, warn_limited
from .._mapping import Operation

#: The attribute older SDKs (and the earlier Events API) put the event's name in.
EVENT_NAME_ATTRIBUTE = "event.name"


class Malformed(ValueError):
    """The body is not an OTLP logs request; the message says why (it is sent back)."""


class Decoded:
    """What a request held: PostHog operations, in the order the request lists them, and how
    many log records it carried in all (the others are not PostHog's and are ignored)."""

    __slots__ = ("operations", "records")

    def __init__(self, operations: List[Operation], records: int) -> None:
        self.operations = operations
        self.records = records


# --- protobuf -------------------------------------------------------------------------------


def decode_protobuf(body: bytes, received_unix_nano: int, exceptions: bool = False) -> Decoded:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from google.protobuf.message import DecodeError

    try:
        request = ExportLogsServiceRequest.FromString(body)
    except (DecodeError, ValueError) as error:  # upb raises DecodeError; some builds ValueError
        raise Malformed("not an OTLP ExportLogsServiceRequest (protobuf): %s" % (error or "cannot be parsed")) from None
    operations: List[Operation] = []
    records = 0
    for resource_logs in request.resource_logs:
        resource: Optional[Dict[str, Any]] = None
        for scope_logs in resource_logs.scope_logs:
            log_records = scope_logs.log_records
            records += len(log_records)
            for record in log_records:
                name: Any = record.event_name
                attributes = None
                if not name:
                    attributes = _pb_attributes(record.attributes)
                    name = attributes.get(EVENT_NAME_ATTRIBUTE)
                if name not in schema.OPERATIONS and not exceptions:
                    continue
                if attributes is None:
                    attributes = _pb_attributes(record.attributes)
                if name not in schema.OPERATIONS and not has_exception(attributes):
                    continue
                if resource is None:
                    resource = _pb_attributes(resource_logs.resource.attributes)
                fields = (
                    attributes,
                    _pb_value(record.body) if record.HasField("body") else None,
                    record.time_unix_nano or record.observed_time_unix_nano or received_unix_nano,
                    _id_from_bytes(record.trace_id, 16, "trace_id"),
                    _id_from_bytes(record.span_id, 8, "span_id"),
                    resource,
                )
                _add(operations, name, fields, record.severity_number)
    return Decoded(operations, records)


def _pb_attributes(pairs: Any) -> Dict[str, Any]:
    out = {}
    for pair in pairs:  # _pb_value inlined for the common kinds: a call less per value adds up here
        value = pair.value
        kind = value.WhichOneof("value")
        if kind == "string_value":
            out[pair.key] = value.string_value
        elif kind == "int_value" or kind == "bool_value":
            out[pair.key] = getattr(value, kind)
        else:
            out[pair.key] = None if kind is None else _PB_READERS[kind](value)
    return out


def _pb_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":  # the common case first
        return value.string_value
    if kind is None:
        return None
    return _PB_READERS[kind](value)


def _pb_double(value: Any) -> Any:
    number = value.double_value
    return number if math.isfinite(number) else None  # as the property rules: NaN, inf -> null


_PB_READERS: Dict[str, Callable[[Any], Any]] = {
    "int_value": lambda v: v.int_value,
    "bool_value": lambda v: v.bool_value,
    "double_value": _pb_double,
    "kvlist_value": lambda v: _pb_attributes(v.kvlist_value.values),
    "array_value": lambda v: [_pb_value(item) for item in v.array_value.values],
    "bytes_value": lambda v: _bytes_text(v.bytes_value),
}


def _id_from_bytes(raw: bytes, size: int, field: str) -> int:
    if not raw:
        return 0
    if len(raw) != size:
        _bad_id(field, "%d bytes, not %d" % (len(raw), size))
        return 0
    return int.from_bytes(raw, "big")


# --- JSON -----------------------------------------------------------------------------------


def decode_json(body: bytes, received_unix_nano: int, exceptions: bool = False) -> Decoded:
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


DECODERS: Mapping[str, Callable[..., Decoded]] = {"protobuf": decode_protobuf, "json": decode_json}

