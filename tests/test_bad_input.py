"""Property-based: arbitrary values and ids never raise, never crash the exporter; valid parts arrive."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import posthog_otel as posthog

RELAXED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Opaque:
    """An object nothing should try to turn into text."""

    def __str__(self):
        raise RuntimeError("str() of an unserializable value")

    def __repr__(self):
        return "Opaque()"


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(), max_size=50),  # includes lone surrogates
    st.binary(max_size=20),
    st.decimals(allow_nan=True, allow_infinity=False),
    st.datetimes(timezones=st.none() | st.just(dt.timezone.utc)),
    st.dates(),
    st.uuids(),
    st.just(Opaque()),
    st.just(lambda x: x),
)
keys = st.one_of(st.text(max_size=10), st.integers(), st.none(), st.tuples(st.integers()))
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=12,
)
ids = st.one_of(st.text(max_size=30), st.integers(), st.floats(), st.uuids(), st.none(), st.binary(max_size=8))


@RELAXED
@given(distinct_id=ids, properties=st.dictionaries(keys, values, max_size=6), groups=st.dictionaries(keys, ids, max_size=3))
def test_any_input_is_delivered_or_dropped_never_raised(server, pipeline, distinct_id, properties, groups):
    server.reset()
    returned = [
        posthog.set(distinct_id, properties),
        posthog.set_once(distinct_id=distinct_id, properties=properties),
        posthog.capture(distinct_id, "fuzzed", properties, groups=groups),
        posthog.group_identify("company", distinct_id, properties),
        posthog.alias(distinct_id, "someone"),
    ]
    assert pipeline.flush()
    sent = {e["uuid"]: e for e in server.events}
    for uuid in filter(None, returned):
        assert uuid in sent, "an operation that returned a uuid must arrive"
    for request in server.requests:
        assert request.payload is not None  # valid JSON, always
        json.dumps(request.payload, allow_nan=False)
    if returned[0] is not None:
        assert sent[returned[0]]["distinct_id"] == (distinct_id if isinstance(distinct_id, str) else str(distinct_id))


@RELAXED
@given(value=values)
def test_plain_values_survive_exactly(server, pipeline, value):
    """Strings, ints, bools and finite floats come out as they went in."""
    server.reset()
    plain = {"k": value} if _plain(value) else {"k": "x"}
    uuid = posthog.set("u", plain)
    assert pipeline.flush()
    (event,) = server.events
    assert event["uuid"] == uuid
    assert event["$set"] == json.loads(json.dumps(plain))


def _plain(value):
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return False


def test_cyclic_and_deep_structures_are_dropped_not_followed(server, pipeline):
    cycle: dict = {"name": "loop"}
    cycle["self"] = cycle
    deep: list = []
    node = deep
    for _ in range(1000):
        node.append([])
        node = node[0]
    uuid = posthog.set("u", {"cycle": cycle, "deep": deep, "ok": 1})
    assert pipeline.flush()
    (event,) = server.events
    assert event["uuid"] == uuid
    assert event["$set"]["ok"] == 1 and event["$set"]["cycle.name"] == "loop"
    assert posthog.drop_counts()["invalid_property"] == 2


def test_huge_strings_are_dropped_with_the_event_not_the_batch(server, pipeline):
    big = posthog.set("u", {"blob": "x" * (2 * 1024 * 1024)})
    small = posthog.set("u", {"ok": decimal.Decimal("1.5")})
    assert big is not None
    pipeline.flush()
    assert [e["uuid"] for e in server.events] == [small]
    assert posthog.drop_counts() == {"too_large": 1}
