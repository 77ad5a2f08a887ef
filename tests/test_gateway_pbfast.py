"""The fast protobuf reader (``gateway._pbfast``) against the official one: for any bytes, the
same operations, the same record counts, the same refusal (``Malformed``, ``TooLarge`` at the
same object bound) and the same drops, whether its cache of pairs is cold or warm.

The requests are written byte by byte, so that they hold what the official classes never
write: fields out of order or repeated (protobuf merges them), unknown fields of every wire
type, strings that are not UTF-8, overlong and ten-byte varints, empty and missing values,
nesting past the fast reader's depth; then some are cut short or have a byte changed."""

from __future__ import annotations

import contextlib
import math
import struct
from typing import Any, Iterator, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posthog_otel import _log  # noqa: E402
from posthog_otel import _schema as schema  # noqa: E402
from posthog_otel._exceptions import limits  # noqa: E402
from posthog_otel.gateway import _otlp, _pbfast  # noqa: E402
from posthog_otel.gateway._otlp import Limits, Malformed, decode_protobuf  # noqa: E402

from . import gateway_support  # noqa: F401  (skips without opentelemetry-proto)
from .support import examples

RECEIVED = 1_800_000_000_000_000_000


# --- the wire format, by hand ---------------------------------------------------------------


def varint(n: int, overlong: int = 0) -> bytes:
    n &= 2**64 - 1  # negative int64: ten bytes, as protobuf writes them
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    if overlong:  # the same number in more bytes: parsers take it (up to ten bytes)
        out += bytes([n | 0x80] + [0x80] * (overlong - 1)) + b"\x00"
    else:
        out.append(n)
    return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def ld(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


def text_bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


# --- strategies -----------------------------------------------------------------------------

short_text = st.text(max_size=6) | st.sampled_from(["plan", "pro", "posthog.distinct_id", "é", "\U0001f600"])
not_utf8 = st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"a\x80b", b"\xc0\xaf"])
#: How odd a request may be: 0, written as protobuf writes (the fast reader's common shape);
#: 1, also fields out of order, repeated, unknown, values merged; 2, also strings that are not
#: UTF-8 (protobuf refuses the request). A third each.
hostile = st.shared(st.integers(0, 2), key="hostile")


def text_field(good: Any) -> Any:
    """``good`` text as bytes or, in a hostile request, sometimes bytes that are not UTF-8."""
    as_bytes = good.map(text_bytes)
    return hostile.flatmap(lambda h: st.one_of(*[as_bytes] * 5, not_utf8) if h == 2 else as_bytes)


unknown_field = st.one_of(
    st.builds(lambda n, v: tag(n, 0) + varint(v), st.integers(13, 2000), st.integers(0, 2**64 - 1)),
    st.builds(lambda n, v: ld(n, v), st.integers(13, 2000), st.binary(max_size=6)),
    st.builds(lambda n, v: tag(n, 1) + v, st.integers(13, 2000), st.binary(min_size=8, max_size=8)),
    st.builds(lambda n, v: tag(n, 5) + v, st.integers(13, 2000), st.binary(min_size=4, max_size=4)),
)  # fmt: skip


def _scalar_value() -> Any:
    """One ``AnyValue``'s bytes holding a scalar, in the shapes protobuf writes and in others."""
    return st.one_of(
        st.just(b""),  # an empty value: null
        *[st.builds(lambda s: ld(1, s), text_field(short_text))] * 4,  # most values
        st.builds(lambda s: ld(1, text_bytes(s)), st.text(min_size=120, max_size=300)),  # lengths of two bytes
        st.builds(lambda s: ld(1, s), text_field(st.text(st.characters(max_codepoint=127), max_size=4))),
        st.builds(lambda b, o: tag(2, 0) + varint(b, o), st.integers(0, 300), st.integers(0, 2)),
        st.builds(lambda i, o: tag(3, 0) + varint(i, o), st.integers(-(2**63), 2**63 - 1)
                  | st.integers(0, 20000) | st.integers(2**63, 2**64 - 1), st.integers(0, 1)),
        st.builds(lambda d: tag(4, 1) + struct.pack("<d", d), st.floats(allow_nan=True, allow_infinity=True)),
        st.builds(lambda b: ld(7, b), st.binary(max_size=5) | not_utf8),
        st.builds(lambda i: tag(3, 1) + struct.pack("<q", i), st.integers(-5, 5)),  # a known field, the wrong wire type
    )  # fmt: skip


def _pair(key: Any, value: bytes, extra: List[bytes], order: str) -> bytes:
    key_field = ld(1, text_bytes(key) if isinstance(key, str) else key)
    value_field = ld(2, value)
    parts = {"kv": [key_field, value_field], "vk": [value_field, key_field], "k": [key_field], "v": [value_field],
             "kvv": [key_field, value_field, value_field], "kkv": [key_field, ld(1, b"x"), value_field]}[order]  # fmt: skip
    return b"".join(parts + extra)


scalar_value = _scalar_value()


@st.composite
def any_value(draw: Any, depth: int = 0) -> bytes:
    """An ``AnyValue``: a scalar, a list or a map (of up to four), or two values in one (protobuf
    merges them: the last field of the ``oneof`` wins, and the one it replaced is still parsed)."""
    odd = draw(hostile) > 0
    kind = draw(st.sampled_from(["scalar"] * 3 + ["list", "map"] + ["merged"] * odd)) if depth < 3 else "scalar"
    if kind == "scalar":
        return draw(scalar_value)
    if kind == "merged":
        return draw(any_value(depth + 1)) + draw(any_value(depth + 1))
    items = draw(st.lists(any_value(depth + 1), max_size=4))
    if kind == "list":
        return ld(5, b"".join(ld(1, item) for item in items))
    return ld(6, b"".join(ld(1, draw(pairs(item))) for item in items))


@st.composite
def pairs(draw: Any, value: Optional[bytes] = None) -> bytes:
    """A ``KeyValue``: in odd requests, sometimes its fields out of order, one missing or
    repeated, an unknown one after them."""
    key = draw(text_field(short_text | st.sampled_from([schema.EVENT_NAME_ATTRIBUTE, "exception.type"])))
    value = draw(any_value()) if value is None else value
    if not draw(hostile) or draw(st.booleans()):
        return _pair(key, value, [], "kv")
    return _pair(
        key, value, draw(st.lists(unknown_field, max_size=1)), draw(st.sampled_from(["vk", "k", "v", "kvv", "kkv"]))
    )


operation_names = st.sampled_from(sorted(schema.OPERATIONS))
names = st.one_of(*[operation_names] * 3, st.sampled_from(["", "posthog.unknown", "app.log"]))


@st.composite
def records(draw: Any) -> bytes:
    fields = []
    name = draw(names)
    if name or draw(st.booleans()):
        fields.append(ld(12, name.encode()))
    for _ in range(draw(st.integers(0, 4))):
        fields.append(ld(6, draw(pairs())))
    if draw(st.booleans()):  # the older SDKs' name attribute
        fields.append(ld(6, _pair(schema.EVENT_NAME_ATTRIBUTE, ld(1, draw(names).encode()), [], "kv")))
    if draw(st.booleans()):
        fields.append(ld(5, draw(any_value())))
    for number, wire, size in ((1, 1, 8), (11, 1, 8), (8, 5, 4)):  # times, flags
        if draw(st.booleans()):
            fields.append(tag(number, wire) + draw(st.binary(min_size=size, max_size=size)))
    for number, sizes in ((9, [16, 3]), (10, [8, 0])):  # trace and span ids, right and wrong sizes
        if draw(st.booleans()):
            fields.append(ld(number, draw(st.binary(min_size=draw(st.sampled_from(sizes)), max_size=16))))
    if draw(st.booleans()):
        fields.append(tag(2, 0) + varint(draw(st.integers(-1, 30))))
    if draw(st.booleans()):
        fields.append(ld(3, draw(text_field(st.just("ERROR")))))
    if draw(hostile):
        fields += draw(st.lists(unknown_field, max_size=2))
        return b"".join(draw(st.permutations(fields)))
    return b"".join(fields)


@st.composite
def requests(draw: Any) -> bytes:
    resource = b"".join(ld(1, draw(pairs())) for _ in range(draw(st.integers(0, 2))))
    scope = ld(1, draw(st.binary(max_size=3))) if draw(st.booleans()) else b""
    logs = b"".join(ld(2, r) for r in draw(st.lists(records(), max_size=4)))
    body = ld(1, (ld(1, resource) if resource or draw(st.booleans()) else b"") + ld(2, scope + logs))
    change = draw(st.sampled_from(["none"] * 6 + ["cut", "flip", "insert"])) if draw(hostile) else "none"
    if change != "none" and body:
        at = draw(st.integers(0, len(body) - 1))
        if change == "cut":
            body = body[:at]
        elif change == "flip":
            body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
        else:
            body = body[:at] + draw(st.binary(min_size=1, max_size=3)) + body[at:]
    return body


# --- the two readers ----------------------------------------------------------------------


#: Values as SDKs write them, of every kind and size the fast reader reads by hand (and the
#: edges past them), and now and then one it must leave to the official classes.
edge_scalar = st.one_of(
    st.builds(lambda s: ld(1, text_bytes(s)), short_text | st.text(min_size=100, max_size=200)),
    st.builds(lambda b: tag(2, 0) + varint(b), st.integers(0, 300)),
    st.builds(lambda i: tag(3, 0) + varint(i), st.integers(0, 20000) | st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda d: tag(4, 1) + struct.pack("<d", d), st.floats() | st.sampled_from([math.nan, math.inf, -math.inf, -0.0])),
    st.builds(lambda b: ld(7, text_bytes(b)), short_text),
    st.just(b""),
)  # fmt: skip
rare_scalar = st.one_of(
    st.builds(lambda b: ld(7, b), st.binary(max_size=4)),
    st.builds(lambda s: ld(1, s), not_utf8),
    st.builds(lambda b, o: tag(2, 0) + varint(b, o), st.integers(0, 2), st.integers(1, 2)),
    st.builds(lambda i, o: tag(3, 0) + varint(i, o), st.integers(0, 300), st.integers(1, 2)),
)


@st.composite
def edge_value(draw: Any, depth: int = 0) -> bytes:
    kind = draw(st.sampled_from(["scalar"] * 20 + ["list", "map"] * 2 * (depth < 3) + ["rare", "merged"]))
    if kind == "scalar":
        return draw(edge_scalar)
    if kind == "rare":
        return draw(rare_scalar)
    if kind == "merged":  # two values in one: protobuf keeps the last, and parses both
        return draw(edge_value(depth + 1)) + draw(edge_value(depth + 1))
    items = draw(st.lists(edge_value(depth + 1), max_size=4))
    if kind == "list":
        return ld(5, b"".join(ld(1, item) for item in items))
    return ld(6, b"".join(ld(1, _pair(draw(short_text), item, [], "kv")) for item in items))


@st.composite
def common_requests(draw: Any) -> bytes:
    """One or two operations' records, as SDKs write them: a name, attributes, a map body."""
    out = []
    for _ in range(draw(st.integers(1, 2))):
        attributes = [
            ld(6, _pair(draw(short_text), draw(edge_value()), [], "kv")) for _ in range(draw(st.integers(0, 4)))
        ]
        body = b"".join(
            ld(1, _pair(draw(short_text), draw(edge_value()), [], "kv")) for _ in range(draw(st.integers(0, 12)))
        )
        out.append(ld(2, ld(12, draw(operation_names).encode()) + b"".join(attributes) + ld(5, ld(6, body))))
    return ld(1, ld(2, b"".join(out)))


@contextlib.contextmanager
def official_only() -> Iterator[None]:
    """The reference: every record read by the official classes (the fast reader declines all)."""

    def decline(data: bytes, spend: Any) -> Any:
        raise _pbfast.Unusual()

    fast = _pbfast.read
    _pbfast.read = decline
    try:
        yield
    finally:
        _pbfast.read = fast


def outcome(body: bytes, max_objects: int, exceptions: bool) -> Tuple[Any, ...]:
    """What decoding ``body`` gives: its operations (their repr: ``True`` is not ``1``, nor
    ``-0.0`` ``0.0``), records and refusals, or the refusal's type and words; and the drops."""
    _log.reset_diagnostics()
    for memory in (limits.calls, limits.records, limits.recent):  # exceptions' rate limits and duplicates
        memory.reset()
    try:
        decoded = decode_protobuf(body, RECEIVED, Limits(max_objects, seconds=1e9), exceptions)
        result: Tuple[Any, ...] = ("decoded", repr(decoded.operations), decoded.records, repr(decoded.refused))
    except Malformed as error:  # anything else fails the test: the only refusal a reader may raise
        result = (type(error).__name__, str(error))
    return result, _log.drop_counts()


@pytest.mark.slow  # 600 hostile requests, ~20 s: the README's quick run keeps the focused tests below
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(requests(), st.sampled_from([200_000, 200_000, 40, 12, 3]), st.booleans())
def test_the_fast_reader_reads_what_the_official_classes_read(body, max_objects, exceptions):
    with official_only():
        expected = outcome(body, max_objects, exceptions)
    _pbfast.forget()
    assert outcome(body, max_objects, exceptions) == expected  # a cold cache
    assert outcome(body, max_objects, exceptions) == expected  # every pair it could keep, kept


@settings(max_examples=examples(250), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(common_requests(), st.sampled_from([200_000, 200_000, 30, 8]))
def test_every_value_of_the_common_shape_is_read_as_the_official_classes_read_it(body, max_objects):
    with official_only():
        expected = outcome(body, max_objects, False)
    _pbfast.forget()
    assert outcome(body, max_objects, False) == expected
    assert outcome(body, max_objects, False) == expected


def _list(*items: bytes) -> bytes:
    return ld(5, b"".join(ld(1, item) for item in items))


def _map(**values: bytes) -> bytes:
    return ld(6, b"".join(ld(1, _pair(key, value, [], "kv")) for key, value in values.items()))


LONG = ld(1, b"x" * 150)
EDGES = {
    "bool 2": tag(2, 0) + b"\x02", "bool overlong": tag(2, 0) + b"\x81\x00", "int 127": tag(3, 0) + varint(127),
    "int 128": tag(3, 0) + varint(128), "int 16383": tag(3, 0) + varint(16383), "int 16384": tag(3, 0) + varint(16384),
    "int -1": tag(3, 0) + varint(-1), "int overlong": tag(3, 0) + varint(5, 1), "NaN": tag(4, 1) + struct.pack("<d", math.nan),
    "-inf": tag(4, 1) + struct.pack("<d", -math.inf), "-0.0": tag(4, 1) + struct.pack("<d", -0.0),
    "string of 127": ld(1, b"y" * 125), "string of 128": ld(1, b"y" * 126), "empty string": ld(1, b""),
    "bytes not UTF-8": ld(7, b"\xff"), "empty list": ld(5, b""), "empty map": ld(6, b""),
    "a long list": _list(LONG, LONG), "a long list, then a string": _list(LONG, LONG) + ld(1, ld(1, b"s")),  # the string also reads as an item
    "a list, then a string": _list(ld(1, b"a")) + ld(1, b"s"),
    "a list holding a string that is not UTF-8, replaced": _list(ld(1, b"\xff")) + tag(3, 0) + b"\x01",
    "a long list holding a string that is not UTF-8, replaced": _list(LONG, ld(1, b"\xff")) + tag(3, 0) + b"\x01",
    "a map holding a string that is not UTF-8, replaced": _map(k=ld(1, b"\xff")) + ld(1, b"s"),
    "two maps: merged": _map(a=ld(1, b"1")) + _map(b=ld(1, b"2")),
    "a string, then a list": ld(1, b"s") + _list(ld(1, b"a")),
    "a list with an unknown field": ld(5, ld(1, ld(1, b"a")) + tag(9, 0) + b"\x01"),
    "a list of lists": _list(_list(ld(1, b"a")), _list()),
}  # fmt: skip


@pytest.mark.parametrize("where", ["attribute", "property", "list item", "body"])
@pytest.mark.parametrize("edge", sorted(EDGES))
def test_each_edge_of_the_hand_reader_reads_as_the_official_classes_read_it(edge, where):
    value = EDGES[edge]
    if where == "list item":
        value = _list(ld(1, b"a"), value)
    body = {"attribute": _map(p=ld(1, b"v")), "property": _map(p=value), "list item": _map(p=value), "body": value}[
        where
    ]
    attribute = ld(6, _pair("a", value if where == "attribute" else ld(1, b"v"), [], "kv"))
    record = ld(12, b"posthog.capture") + attribute + ld(5, body)
    request = ld(1, ld(2, ld(2, record) + ld(2, record)))  # twice: the second from the cache
    for bound in (200_000, 4):
        with official_only():
            expected = outcome(request, bound, False)
        _pbfast.forget()
        assert outcome(request, bound, False) == expected


def test_the_common_shape_is_read_without_the_official_classes(monkeypatch):
    """Guards the guard: the differential test above means something only if the fast reader
    reads the common records itself (here the official classes would fail the test)."""
    from benchmarks.gateway import request_body

    expected = decode_protobuf(request_body(0, RECEIVED, "list"), RECEIVED).operations

    def refuse(data: bytes) -> Any:
        raise AssertionError("read the official way")

    monkeypatch.setattr(_otlp, "_official_record", refuse)
    for _ in range(2):  # cold cache, then warm
        assert decode_protobuf(request_body(0, RECEIVED, "list"), RECEIVED).operations == expected
    assert len(expected) == 512 and expected[0].body["interests"] == ["books", "music", "travel"]


@pytest.mark.parametrize("kinds", ["map", "list", "both"])
@pytest.mark.parametrize(
    "depth", [_pbfast.MAX_DEPTH - 2, _pbfast.MAX_DEPTH - 1, _pbfast.MAX_DEPTH, 32, 33, 34, 60, 150]
)
def test_values_nested_deeply_read_alike(depth, kinds):
    """Past ``MAX_DEPTH`` the official classes read the record; past protobuf's own limit (100
    messages) both refuse it."""
    value = ld(1, b"leaf")
    for level in range(depth):
        as_list = kinds == "list" or (kinds == "both" and level % 2)
        value = ld(5, ld(1, value)) if as_list else ld(6, ld(1, ld(1, b"k") + ld(2, value)))
    record = ld(12, b"posthog.capture") + ld(5, ld(6, ld(1, ld(1, b"p") + ld(2, value))))
    body = ld(1, ld(2, ld(2, record)))
    with official_only():
        expected = outcome(body, 200_000, False)
    assert outcome(body, 200_000, False) == expected


def test_a_list_from_the_cache_is_counted_and_a_copy():
    """A kept list is spent against the bound as when it was read, and each record gets its own."""
    pair = ld(1, b"tags") + ld(2, ld(5, b"".join(ld(1, ld(1, t)) for t in (b"a", b"b", b"c"))))
    record = ld(12, b"posthog.capture") + ld(5, ld(6, ld(1, pair)))
    body = ld(1, ld(2, b"".join(ld(2, record) for _ in range(2))))
    first, second = decode_protobuf(body, RECEIVED).operations
    first.body["tags"].append("mutated")
    assert second.body["tags"] == ["a", "b", "c"]
    for bound in range(14):  # 1 scope logs + 2 records, each: a kvlist of 1 pair, its list of 3
        with official_only():
            expected = outcome(body, bound, False)
        assert outcome(body, bound, False) == expected


def test_the_records_it_declines_leave_nothing_behind():
    """A declined record's exception, traceback and frames (which hold its bytes) are freed: an
    exception instance raised again keeps the traceback of every earlier raise."""
    import tracemalloc

    record = ld(12, b"posthog.unknown") + ld(6, _pair("k", ld(1, b"v" * 100), [], "kv"))
    body = ld(1, ld(2, b"".join(ld(2, record) for _ in range(1000))))
    assert decode_protobuf(body, RECEIVED).operations == []
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            decode_protobuf(body, RECEIVED)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000


def test_the_cache_of_pairs_stays_bounded_and_keeps_the_pairs_that_repeat():
    _pbfast.forget()
    repeated = ld(1, _pair("plan", ld(1, b"pro"), [], "kv"))
    records = [ld(12, b"posthog.capture") + ld(5, ld(6, repeated + ld(1, _pair("id", ld(1, b"%d" % n), [], "kv"))))
               for n in range(3 * _pbfast.CACHE_PAIRS)]  # fmt: skip
    operations = decode_protobuf(ld(1, ld(2, b"".join(ld(2, r) for r in records))), RECEIVED).operations
    assert [op.body["id"] for op in operations] == [str(n) for n in range(3 * _pbfast.CACHE_PAIRS)]
    assert len(_pbfast._cache) + len(_pbfast._older) <= 2 * _pbfast.CACHE_PAIRS
    assert repeated[2:] in _pbfast._cache  # found in the older generation, kept again each time
