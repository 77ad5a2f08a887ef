"""JSON encoding: with the optional orjson or without it, the same JSON values leave."""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posthog_otel._delivery import encoding as _encoding
from posthog_otel._delivery.encoding import EncodedBatch, encode_event

orjson = pytest.importorskip("orjson")  # installed by the dev extra; the 3.9 run goes without it


class Colour(enum.Enum):
    RED = "red"


class Tier(enum.Enum):
    PRO = {"name": "pro", "limits": {"seats": 5}}


texts = st.text(max_size=8)  # includes lone surrogates, which neither encoder may send as they are
scalars = (
    st.none() | st.booleans() | texts
    | st.integers(min_value=-(2**70), max_value=2**70)  # past 64 bits: orjson refuses, the standard one writes them
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([dt.datetime(2024, 1, 2, 3, 4, 5), uuid.UUID(int=7), Colour.RED, Tier.PRO, b"bytes", {1, 2}])
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts | st.integers(), inner, max_size=3),
    max_leaves=12,
)
events = st.dictionaries(texts, values, max_size=5)


def standard(event):
    """What the standard library alone makes of an event (the encoding without the extra)."""
    try:
        return _encoding._stdlib_dumps(event)
    except (TypeError, ValueError):
        return _encoding._stdlib_dumps(_encoding._scrub(event))


@settings(max_examples=300, deadline=None)
@given(event=events)
def test_orjson_and_the_standard_encoder_send_the_same_values(event):
    assert _encoding.dumps is _encoding._orjson_dumps
    assert json.loads(encode_event(event)) == json.loads(standard(event))


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(events, max_size=4))
def test_a_whole_batch_encodes_as_its_events_one_by_one(batch):
    encoded, too_large = EncodedBatch.encode(batch)
    assert not too_large
    assert encoded.events() == [json.loads(standard(event)) for event in batch]


def test_an_enum_beside_a_value_that_needs_scrubbing_is_written_as_orjson_writes_it():
    event = {"tier": Tier.PRO, "big": 2**63 + 1, "bad": "\ud800"}
    assert json.loads(encode_event(event)) == json.loads(standard(event)) == {
        "tier": {"name": "pro", "limits": {"seats": 5}}, "big": 2**63 + 1,
    }  # fmt: skip
    assert json.loads(_encoding._orjson_dumps({"tier": Tier.PRO, "big": 2**63 + 1})) == {
        "tier": {"name": "pro", "limits": {"seats": 5}}, "big": 2**63 + 1,
    }  # fmt: skip


def test_values_json_cannot_hold_become_null_or_are_left_out_alike():
    event = {"nan": math.nan, "inf": -math.inf, "big": 2**80, "when": dt.datetime(2024, 1, 2), "bad": "a\ud800b"}
    assert json.loads(encode_event(event)) == json.loads(standard(event)) == {
        "nan": None, "inf": None, "big": 2**80, "when": "2024-01-02T00:00:00",
    }  # fmt: skip
