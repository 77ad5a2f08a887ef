"""The two OTLP readers (pure): protobuf and OTLP/JSON give the same operations for the same
request, and any bytes are either a request or ``Malformed``, never another error."""

from __future__ import annotations

import base64
import json

import pytest
from google.protobuf.json_format import MessageToDict  # noqa: E402  (after the skips in gateway_support)
from hypothesis import given, settings
from hypothesis import strategies as st

from posthog_otel import _schema as schema  # noqa: E402
from posthog_otel.gateway._otlp import Malformed, decode_json, decode_protobuf  # noqa: E402

from .gateway_support import record, request

RECEIVED = 1_800_000_000_000_000_000

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
scalars = st.one_of(
    st.none(), st.booleans(), text, st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=6),
)  # fmt: skip
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=8
)
names = st.sampled_from(sorted(schema.OPERATIONS) + ["", "app.log", "posthog.unknown"])
records = st.builds(
    lambda name, attributes, body, when, ids: record(
        name, attributes, body, time_unix_nano=when, trace_id=ids[0], span_id=ids[1]
    ),  # fmt: skip
    names,
    st.dictionaries(text, values, max_size=4),
    values,
    st.integers(0, 2**64 - 1),
    st.sampled_from([(b"", b""), (bytes(range(16)), bytes(range(8)))]),
)


def as_otlp_json(message) -> bytes:
    """OTLP/JSON as the spec writes it: protobuf's JSON mapping, but trace and span ids in hex."""
    document = MessageToDict(message)
    for resource_logs in document.get("resourceLogs", []):
        for scope_logs in resource_logs.get("scopeLogs", []):
            for log in scope_logs.get("logRecords", []):
                for field in ("traceId", "spanId"):
                    if field in log:
                        log[field] = base64.b64decode(log[field]).hex()
    return json.dumps(document).encode()


@settings(max_examples=150, deadline=None)
@given(st.lists(records, max_size=5), st.dictionaries(text, scalars, max_size=2))
def test_protobuf_and_json_read_the_same(items, resource):
    message = request(items, resource)
    from_protobuf = decode_protobuf(message.SerializeToString(), RECEIVED)
    from_json = decode_json(as_otlp_json(message), RECEIVED)
    assert from_protobuf.records == from_json.records == len(items)
    assert from_protobuf.operations == from_json.operations
    assert [op.name for op in from_protobuf.operations] == [
        r.event_name for r in items if r.event_name in schema.OPERATIONS
    ]


def test_an_operation_carries_what_the_mapping_reads():
    message = request([record("posthog.set", {"posthog.distinct_id": "u"}, {"a": [1, "x"], "m": {"k": 2.5}},
                              observed_time_unix_nano=5, trace_id=bytes(range(16)), span_id=bytes(range(8)))],
                      {"service.name": "api"})  # fmt: skip
    (operation,) = decode_protobuf(message.SerializeToString(), RECEIVED).operations
    assert operation.attributes == {"posthog.distinct_id": "u"}
    assert operation.body == {"a": [1, "x"], "m": {"k": 2.5}}
    assert operation.time_unix_nano == 5  # observed time when the record has no time; receipt when neither
    assert operation.trace_id == int.from_bytes(bytes(range(16)), "big") and operation.span_id == 0x01020304050607
    assert operation.resource == {"service.name": "api"}


def test_event_name_attribute_of_older_sdks():
    message = request([record("", {"event.name": "posthog.set", "posthog.distinct_id": "u"}, {"a": 1})])
    (operation,) = decode_protobuf(message.SerializeToString(), RECEIVED).operations
    assert operation.name == "posthog.set" and operation.time_unix_nano == RECEIVED


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_are_a_request_or_malformed(body):
    for decode in (decode_protobuf, decode_json):
        try:
            decode(body, RECEIVED)
        except Malformed:
            pass


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
                    max_leaves=10))  # fmt: skip
def test_any_json_document_is_a_request_or_malformed(document):
    wrapped = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"eventName": "posthog.set", "body": document,
                                                                "attributes": [{"key": "k", "value": document}]}]}]}]}  # fmt: skip
    for candidate in (document, wrapped):
        try:
            decode_json(json.dumps(candidate).encode(), RECEIVED)
        except Malformed:
            pass


def test_json_nested_past_the_stack_is_malformed_not_an_internal_error():
    deep_value = '{"kvlistValue":{"values":[{"key":"k","value":' * 3000 + '{"stringValue":"x"}' + "}]}}" * 3000
    body = '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"eventName":"posthog.set","body":%s}]}]}]}' % deep_value
    with pytest.raises(Malformed, match="nested too deeply"):
        decode_json(body.encode(), 1)  # parsed, then too deep to walk
    with pytest.raises(Malformed, match="nested too deeply"):
        decode_json(b"[" * 100000 + b"]" * 100000, 1)  # too deep for the JSON parser itself
