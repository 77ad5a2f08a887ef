"""The value table of docs/schema.md, one row per test case."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import decimal
import enum
import json
import logging
import uuid

import pytest

from posthog_otel import drop_counts
from posthog_otel._properties import MAX_DEPTH, sanitize_properties

from .support import examples


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Address:
    city: str
    zip: int


class Opaque:
    pass


class Shape(enum.Enum):
    SQUARE = {"sides": 4}


class Unprintable:
    def __str__(self):
        raise RuntimeError("str")


class BrokenMap(dict):
    def items(self):
        raise RuntimeError("items")


class BrokenList(list):
    def __iter__(self):
        raise RuntimeError("iter")


@dataclasses.dataclass(repr=False)
class BrokenField:
    size: int = 0

    def __getattribute__(self, name):
        if name == "size":
            raise RuntimeError("field")
        return object.__getattribute__(self, name)


class BrokenZone(dt.tzinfo):
    def utcoffset(self, moment):
        raise RuntimeError("utcoffset")


UTC = dt.timezone.utc
PLUS2 = dt.timezone(dt.timedelta(hours=2))

ROWS = [
    ("text", "hello", "hello"),
    ("int", 42, 42),
    ("float", 95.5, 95.5),
    ("bool", True, True),
    ("none", None, None),
    ("nan", float("nan"), None),
    ("inf", float("inf"), None),
    ("decimal", decimal.Decimal("1.25"), 1.25),
    ("decimal_nan", decimal.Decimal("NaN"), None),
    ("naive_datetime", dt.datetime(2024, 1, 15, 10, 30), "2024-01-15T10:30:00"),
    ("aware_datetime", dt.datetime(2024, 1, 15, 10, 30, tzinfo=PLUS2), "2024-01-15T10:30:00+02:00"),
    ("date", dt.date(2024, 1, 15), "2024-01-15"),
    ("time", dt.time(10, 30), "10:30:00"),
    ("uuid", uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    ("list", ["a", 1, None], ["a", 1, None]),
    ("tuple", (1, 2), [1, 2]),
    ("frozenset", frozenset({"x"}), ["x"]),
    ("deque", collections.deque([1, 2]), [1, 2]),
    ("bytes", "café".encode(), "café"),
    ("enum", Color.RED, "red"),
    ("int_enum", Level.HIGH, 3),
    ("list_of_maps", [{"a": {"b": 1}}], [{"a.b": 1}]),
    ("list_with_nan", [1.0, float("nan")], [1.0, None]),
    ("int64_max", 2**63 - 1, 2**63 - 1),
    ("int64_min", -(2**63), -(2**63)),
    ("past_int64", 2**64, float(2**64)),
    ("past_int64_negative", -(2**70), -float(2**70)),
    ("surrogate_pair_as_one_char", "\U0001f994", "\U0001f994"),
    ("enum_of_a_map", Shape.SQUARE, {"sides": 4}),
    ("list_without_surrogate_items", ["a", "b\udcff", 2**64], ["a", float(2**64)]),
]


@pytest.mark.parametrize("name,value,expected", ROWS, ids=[r[0] for r in ROWS])
def test_value_table(name, value, expected):
    result = sanitize_properties({name: value})
    assert result == {name: expected}
    json.dumps(result, allow_nan=False)  # and it is JSON


def test_nested_maps_are_flattened_with_dots():
    assert sanitize_properties({"a": {"b": 1, "c": {"d": "x"}}, "e": 2}) == {"a.b": 1, "a.c.d": "x", "e": 2}


def test_dataclass_and_mapping_values_are_flattened():
    assert sanitize_properties({"address": Address("Paris", 75001)}) == {"address.city": "Paris", "address.zip": 75001}


def test_pydantic_like_models_are_dumped_and_flattened():
    class Model:
        def model_dump(self):
            return {"plan": "pro"}

    assert sanitize_properties({"m": Model()}) == {"m.plan": "pro"}


def test_non_string_keys_become_strings():
    assert sanitize_properties({1: "a", None: "b", ("t",): "c"}) == {"1": "a", "None": "b", "('t',)": "c"}


def test_a_string_and_a_non_string_key_with_the_same_text_later_wins():
    assert sanitize_properties({1: "int", "1": "str"}) == {"1": "str"}


def test_unserializable_values_are_dropped_warned_and_counted(caplog):
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    result = sanitize_properties({"ok": 1, "fn": lambda x: x, "obj": Opaque(), "bad_bytes": b"\xff"})
    assert result == {"ok": 1}
    assert drop_counts() == {"invalid_property": 3}
    assert "'fn'" in caplog.text and "cannot be serialized" in caplog.text


def test_cycles_are_dropped_not_followed():
    looped: dict = {"a": 1}
    looped["self"] = looped
    listed: list = [1]
    listed.append(listed)
    assert sanitize_properties({"m": looped, "l": listed}) == {"m.a": 1, "l": [1]}
    assert drop_counts()["invalid_property"] == 2


def test_depth_is_bounded():
    deep: dict = {}
    node = deep
    for _ in range(MAX_DEPTH + 5):
        node["n"] = {}
        node = node["n"]
    node["leaf"] = 1
    assert sanitize_properties(deep) == {}
    assert drop_counts() == {"invalid_property": 1}


def test_keep_nested_keeps_maps_for_special_keys():
    result = sanitize_properties(
        {"$set": {"plan": {"tier": "pro"}}, "other": {"x": 1}}, keep_nested=frozenset({"$set"})
    )
    assert result == {"$set": {"plan.tier": "pro"}, "other.x": 1}


def test_result_is_a_snapshot():
    source = {"tags": ["a"], "n": {"k": "v"}}
    result = sanitize_properties(source)
    source["tags"].append("b")
    source["n"]["k"] = "changed"
    assert result == {"tags": ["a"], "n.k": "v"}


def test_not_a_map_is_dropped():
    assert sanitize_properties(["a"]) == {}
    assert drop_counts() == {"invalid_property": 1}


def test_string_subclass_becomes_plain_string():
    class Name(str):
        pass

    result = sanitize_properties({"n": Name("x")})
    assert type(result["n"]) is str


DROPS = [
    ("surrogate_value", {"k": "a\udcff", "ok": 1}, "contains surrogate code points"),
    ("surrogate_pair_as_two_chars", {"k": "\ud83e\udd94", "ok": 1}, "contains surrogate code points"),
    ("surrogate_key", {"k\udc80": 1, "ok": 1}, "key contains surrogate code points"),
    ("unprintable_key", {Unprintable(): 1, "ok": 1}, "key cannot be turned into text"),
    ("past_any_float", {"k": 10**400, "ok": 1}, "too large for any JSON number"),
    ("unprintable_int", {"k": 10**5000, "ok": 1}, "too large for any JSON number"),
    ("map_that_fails", {"k": BrokenMap(a=1), "ok": 1}, "could not be read (RuntimeError)"),
    ("list_that_fails", {"k": BrokenList([1]), "ok": 1}, "could not be read (RuntimeError)"),
    ("dataclass_that_fails", {"k": BrokenField(), "ok": 1}, "could not be read (RuntimeError)"),
    ("datetime_that_fails", {"k": dt.datetime(2024, 1, 1, tzinfo=BrokenZone()), "ok": 1}, "could not be read"),
]


@pytest.mark.parametrize("name, properties, why", DROPS, ids=[row[0] for row in DROPS])
def test_values_that_cannot_be_sent_are_dropped_alone_and_counted(name, properties, why, caplog):
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    assert sanitize_properties(properties) == {"ok": 1}
    assert drop_counts() == {"invalid_property": 1}
    assert why in caplog.text


def test_a_map_that_fails_when_read_gives_nothing():
    assert sanitize_properties(BrokenMap(a=1)) == {}
    assert drop_counts() == {"invalid_property": 1}


def test_the_fast_path_still_copies_plain_dicts():
    source = {"a": "x", "b": 1, "c": 1.5, "d": True, "e": None}
    result = sanitize_properties(source)
    assert result == source and result is not source


def test_keys_that_are_str_subclasses_become_plain_text():
    # The body is what every exporter on the provider reads: OTLP writes str(key), and for a
    # str Enum that is "Field.PLAN", not "plan".
    class Field(str, enum.Enum):
        PLAN = "plan"

    body = sanitize_properties({Field.PLAN: "pro", "seats": 3})
    assert body == {"plan": "pro", "seats": 3}
    assert [type(key) for key in body] == [str, str]


# --- the fast walk and the full one agree on everything ------------------------------------------

import datetime as _datetime  # noqa: E402
import uuid as _uuid  # noqa: E402

from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from posthog_otel import _log, _properties  # noqa: E402

_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True),
    st.text(max_size=8), st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=2),
    st.datetimes(), st.dates(), st.times(), st.uuids(), st.binary(max_size=4), st.decimals(allow_nan=True),
    st.frozensets(st.integers(), max_size=3),
)  # fmt: skip
_KEYS = st.one_of(
    st.text(max_size=5),
    st.integers(),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=1),
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(_KEYS, inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=examples(200), deadline=None)
@given(properties=st.dictionaries(_KEYS, _VALUES, max_size=8))
@example(
    properties={"nan": float("nan"), "inf": float("-inf"), "big": 2**70, "list": [1, float("nan")], "map": {"a": 1}}
)
@example(properties={"when": _datetime.datetime(2024, 1, 1), "id": _uuid.UUID(int=1), "t": ("a", 1), "s": "\ud800"})
@example(properties={"$set": {"a": {"b": 1}}, 1: "int key", "x": {"y": [{"z": 1}]}})
def test_the_fast_walk_and_the_full_one_give_the_same_properties_and_the_same_drops(properties):
    """sanitize_properties walks plain dicts with the common kinds inline (the caller's thread's
    cost); the full, generic walk is the reference: same output, same values dropped."""
    _log.reset_diagnostics()
    fast = _properties.sanitize_properties(properties, keep_nested=frozenset({"$set"}))
    fast_drops = _log.drop_counts()
    _log.reset_diagnostics()
    full: dict = {}
    _properties._flatten_into(full, "", properties, "properties", 0, {id(properties)}, frozenset({"$set"}))
    assert _typed(fast) == _typed(full)  # equal, and of the same types (1 == True == 1.0 would hide one)
    assert fast_drops == _log.drop_counts()


def _typed(value):
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return (type(value).__name__, value)


def _nested(depth, leaf):
    for _ in range(depth):
        leaf = {"k": leaf}
    return leaf


@pytest.mark.parametrize("depth", [18, 19, 20, 21])
@pytest.mark.parametrize("leaf", [[1, 2], [], ("a",), [dt.datetime(2024, 1, 1)], {"a": [1]}], ids=repr)
def test_the_two_walks_agree_at_the_depth_limit(depth, leaf):
    """Found by review: a plain list at depth 20 was kept by the fast walk, dropped by the full one."""
    properties = _nested(depth, {"leaf": leaf})
    _log.reset_diagnostics()
    fast = _properties.sanitize_properties(properties)
    fast_drops = _log.drop_counts()
    _log.reset_diagnostics()
    full: dict = {}
    _properties._flatten_into(full, "", properties, "properties", 0, {id(properties)})
    assert _typed(fast) == _typed(full) and fast_drops == _log.drop_counts()
