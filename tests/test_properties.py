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
    result = sanitize_properties({"$set": {"plan": {"tier": "pro"}}, "other": {"x": 1}}, keep_nested=frozenset({"$set"}))
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
