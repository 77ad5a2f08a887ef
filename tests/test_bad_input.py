"""Bad input: every public call and context helper, any value, through the real pipeline.

The property-based tests check four things for every call: it never raises; it returns
a canonical uuid or None; what arrives is what was returned (the uuid, the person, the
event, the plain properties, the time); and every None is counted under a reason.
Generated values are plain most of the time (so the comparisons bite) and hostile
the rest (raising ``__str__``/``__hash__``/``__bool__``, surrogates, huge ints, objects).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import uuid as uuid_module
from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import posthog_otel as posthog
from posthog_otel import _log

from .support import examples

RELAXED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: Reasons that mean "this operation was dropped" (others count dropped values inside one).
OPERATION_DROPS = frozenset(
    {"no_distinct_id", "no_properties", "no_group", "no_event", "invalid_event", "invalid_arguments", "invalid_id",
     "otel_attribute_limit", "invalid_otel_setting", "no_logger_provider", "after_shutdown", "no_api_key",
     "internal_error"}
)  # fmt: skip


class Hostile:
    """Everything Python may call on a value raises."""

    def __str__(self):
        raise RuntimeError("str")

    __repr__ = __str__

    def __hash__(self):
        raise RuntimeError("hash")

    def __bool__(self):
        raise RuntimeError("bool")

    def __eq__(self, other):
        raise RuntimeError("eq")

    def __len__(self):
        raise RuntimeError("len")

    def __iter__(self):
        raise RuntimeError("iter")


class Unprintable:
    """A hashable value (a map key) that cannot be turned into text."""

    def __str__(self):
        raise RuntimeError("str")

    __repr__ = __str__


class HostileMap(dict):
    """A dict whose reading fails."""

    def items(self):
        raise RuntimeError("items")

    def keys(self):
        raise RuntimeError("keys")


def mostly(common, rare):
    """``common`` nine times in ten; shrinks towards ``common``."""
    return st.integers(0, 9).flatmap(lambda n: rare if n == 9 else common)


# --- values -----------------------------------------------------------------------------------

no_surrogates = st.characters(blacklist_categories=("Cs",))
plain_text = st.text(alphabet=no_surrogates, max_size=20)
key_text = st.one_of(
    st.sampled_from(["plan", "name", "1", ""]),  # shared by tags and properties often enough to collide
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=".$"), max_size=10),
)
plain_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    plain_text,
)
hostile_scalars = st.one_of(
    st.builds(Hostile),
    st.just(len),
    st.text(alphabet=st.characters(), max_size=10).map(lambda text: text + "\udcff"),  # surrogates
    st.integers().map(lambda n: n + 2**63),  # past 64 bits: sent as a float
    st.just(10**400),  # past any float: dropped
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=8),
    st.decimals(allow_nan=True, allow_infinity=False),
    st.datetimes(timezones=st.none() | st.just(dt.timezone.utc)),
    st.uuids(),
    st.builds(HostileMap, st.dictionaries(key_text, plain_scalars, max_size=2)),
)
scalars = mostly(plain_scalars, hostile_scalars)
keys = mostly(key_text, st.one_of(st.integers(-5, 5), st.none(), st.tuples(st.integers()), st.builds(Unprintable),
                                  key_text.map(lambda k: k + "\udc80")))  # fmt: skip
tag_keys = mostly(
    keys,
    st.one_of(
        st.builds(Hostile), st.lists(st.integers(), max_size=2), st.dictionaries(key_text, st.integers(), max_size=1)
    ),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=3)),
    max_leaves=8,
)
properties_of = mostly(st.dictionaries(keys, values, max_size=5), st.one_of(st.none(), values))
ids = mostly(
    st.one_of(plain_text, st.integers(), st.uuids()),
    st.one_of(st.none(), st.just(""), hostile_scalars, st.floats(), st.binary(max_size=4)),
)
uuids = mostly(
    st.none(),
    st.one_of(st.uuids(), st.uuids().map(str), st.uuids().map(lambda u: "{%s}" % u), st.uuids().map(lambda u: u.urn),
              st.uuids().map(lambda u: u.hex.upper()), plain_text, hostile_scalars),
)  # fmt: skip
timestamps = mostly(
    st.none(),
    st.one_of(st.datetimes(timezones=st.just(dt.timezone.utc)), st.datetimes(), plain_text, hostile_scalars,
              st.datetimes(timezones=st.just(dt.timezone.utc)).map(lambda d: d.isoformat())),
)  # fmt: skip
geoip = mostly(st.none() | st.booleans(), hostile_scalars)


# --- the oracle: what a value becomes -------------------------------------------------------------

UNUSABLE = object()


def text_of(value):
    """What an id becomes: its text, None when absent, UNUSABLE when it cannot be sent."""
    if value is None:
        return None
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:
        return UNUSABLE
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return UNUSABLE
    return text or None


def key_name(key):
    """What a property or tag key becomes: its text ("" stays ""), or UNUSABLE."""
    if key is None:
        return "None"
    found = text_of(key)
    return "" if found is None else found


def plain(value):
    kind = type(value)
    if kind is str:
        return text_of(value) is not UNUSABLE
    if kind is int:
        return -(2**63) <= value < 2**63
    if kind is float:
        return value == value and value not in (float("inf"), float("-inf"))
    return kind is bool or value is None


def expected_plain(*layers):
    """The plain key/value pairs that must arrive exactly; later layers win."""
    out = {}
    for layer in layers:
        if type(layer) is not dict:
            continue
        for key, value in layer.items():
            name = key_name(key)
            if name is UNUSABLE:
                continue
            if plain(value):
                out[name] = value
            else:
                out.pop(name, None)  # converted, dropped or flattened: not compared exactly
    return out


def fresh_of(value):
    try:
        return bool(value)
    except Exception:
        return True  # an unreadable fresh= opens a fresh context


# --- calls ------------------------------------------------------------------------------------------


@st.composite
def calls(draw):
    """(name, args, kwargs) of one operation with generated arguments."""
    name = draw(st.sampled_from(["set", "set_once", "group_identify", "alias", "capture"]))
    common = {"uuid": draw(uuids), "timestamp": draw(timestamps), "disable_geoip": draw(geoip)}
    if name in ("set", "set_once"):
        return name, (draw(ids), draw(properties_of)), common
    if name == "group_identify":
        return (
            name,
            (draw(mostly(plain_text, ids)), draw(ids), draw(properties_of)),
            {"distinct_id": draw(ids), **common},
        )
    if name == "alias":
        return name, (draw(ids), draw(ids)), common
    groups = draw(mostly(st.none() | st.dictionaries(key_text, ids, max_size=3), st.one_of(values, st.builds(Hostile))))
    event = draw(mostly(plain_text.filter(bool), st.one_of(st.none(), values)))
    return name, (draw(ids), event, draw(properties_of)), {"groups": groups, **common}


@st.composite
def contexts(draw):
    """What the inner context is told: fresh=, identify_context, set_context_session, tags."""
    return {
        "fresh": draw(mostly(st.booleans(), st.one_of(st.builds(Hostile), st.lists(st.integers(), max_size=2)))),
        "identify": draw(st.one_of(st.just(()), ids.map(lambda v: (v,)))),
        "session": draw(st.one_of(st.just(()), ids.map(lambda v: (v,)))),
        "tags": draw(st.lists(st.tuples(tag_keys, values), max_size=3)),
    }


def expected_scope(context):
    """The inner context's person, session and tags as the operations must see them."""
    fresh = fresh_of(context["fresh"])
    person = None if fresh else "outer-person"
    session = None if fresh else "outer-session"
    if context["identify"]:
        found = text_of(context["identify"][0])
        person = person if found is None else found
    if context["session"]:
        found = text_of(context["session"][0])
        session = session if found is None else (None if found is UNUSABLE else found)
    tags = {}
    for key, value in context["tags"]:
        name = key_name(key)
        if name is not UNUSABLE:
            tags[name] = value
    return person, session, tags


def run(name, args, kwargs):
    return getattr(posthog, name)(*args, **kwargs)


@settings(RELAXED, max_examples=examples(150))
@given(context=contexts(), operations=st.lists(calls(), min_size=1, max_size=4))
@example(  # set(properties) in a context: the context's person (the model took str() of a dict subclass for the id)
    context={"fresh": False, "identify": (), "session": (), "tags": [("plan", [])]},
    operations=[("set", (HostileMap(), None), {"uuid": None, "timestamp": None, "disable_geoip": None})],
)
def test_every_call_in_any_context_never_raises_and_accounts_for_itself(server, pipeline, context, operations):
    server.reset()
    _log.reset_diagnostics()
    person, session, tags = expected_scope(context)
    returned = []
    with posthog.new_context():
        posthog.identify_context("outer-person")
        posthog.set_context_session("outer-session")
        with posthog.new_context(fresh=context["fresh"]):
            for value in context["identify"]:
                posthog.identify_context(value)
            for value in context["session"]:
                posthog.set_context_session(value)
            for key, value in context["tags"]:
                posthog.tag(key, value)
            assert posthog.get_context_distinct_id() == (None if person is UNUSABLE else person)
            assert posthog.get_context_session_id() == session
            assert list(posthog.get_tags()) == list(tags)
            for name, args, kwargs in operations:
                returned.append(run(name, args, kwargs))
    assert pipeline.flush()

    for uuid in returned:
        assert uuid is None or CANONICAL_UUID.fullmatch(uuid)
    dropped = sum(n for reason, n in posthog.drop_counts().items() if reason in OPERATION_DROPS)
    assert dropped == returned.count(None), "every None is counted, once"
    arrived = {e["uuid"]: e for e in server.events}
    assert sorted(arrived) == sorted(u for u in returned if u is not None), "what returned a uuid arrived under it"
    for request in server.requests:
        json.dumps(request.payload, allow_nan=False)  # valid JSON, always
    for (name, args, kwargs), uuid in zip(operations, returned):
        if uuid is not None:
            check_arrival(arrived[uuid], name, args, kwargs, person, session, tags)


def check_arrival(event, name, args, kwargs, person, session, tags):
    """The event carries what the call asked for."""
    if name == "group_identify":
        explicit = text_of(kwargs["distinct_id"])
    elif name == "alias":
        explicit = text_of(args[1])
    elif name in ("set", "set_once") and args[1] is None and isinstance(args[0], Mapping):
        explicit = None  # set(properties), any mapping (a dict whose reading fails too): the context's person
    else:
        explicit = text_of(args[0])
    owner = explicit if explicit is not None else person
    properties = event["properties"]
    if name in ("set", "set_once"):
        assert event["distinct_id"] == owner
        body = args[1] if args[1] is not None or type(args[0]) is not dict else args[0]
        expected = expected_plain(tags, body)
        assert {k: event["$" + name][k] for k in expected} == expected
    elif name == "alias":
        assert (event["distinct_id"], properties["alias"]) == (text_of(args[0]), owner)
    elif name == "group_identify":
        assert (properties["$group_type"], properties["$group_key"]) == (text_of(args[0]), text_of(args[1]))
        if owner is not None:
            assert event["distinct_id"] == owner
        expected = expected_plain(args[2])
        assert {k: properties["$group_set"][k] for k in expected} == expected
    else:
        if owner is not None:
            assert event["distinct_id"] == owner
        else:
            assert properties["$process_person_profile"] is False
        expected = expected_plain(tags, args[2])
        assert {k: properties[k] for k in expected} == expected
    if session is not None:
        assert properties["$session_id"] == session
    else:
        assert "$session_id" not in properties
    moment = kwargs["timestamp"]
    if isinstance(moment, dt.datetime) and moment.tzinfo is not None:
        assert event["timestamp"] == moment.astimezone(dt.timezone.utc).isoformat()
    given_uuid = kwargs["uuid"]
    if isinstance(given_uuid, uuid_module.UUID):
        assert event["uuid"] == str(given_uuid)
    elif isinstance(given_uuid, str) and text_of(given_uuid) is not UNUSABLE:
        try:
            assert event["uuid"] == str(uuid_module.UUID(given_uuid))
        except ValueError:
            pass  # not a uuid: replaced, with a warning


@RELAXED
@given(value=values)
def test_plain_values_survive_exactly(server, pipeline, value):
    """Strings, 64-bit ints, bools and finite floats (and lists of them) come out as they went in."""
    server.reset()
    uuid = posthog.set("u", {"k": value, "anchor": 1})
    assert pipeline.flush()
    (event,) = server.events
    assert event["uuid"] == uuid
    if _plain_tree(value):
        assert event["$set"] == {"k": value, "anchor": 1}


def _plain_tree(value):
    if isinstance(value, list):
        return all(_plain_tree(v) for v in value)
    return plain(value)


@settings(RELAXED, max_examples=40)  # each call asks the server for flags
@given(person=ids, contextual=ids)
def test_feature_flag_calls_never_raise_for_any_person(server, pipeline, person, contextual):
    server.flags = {"beta": {"enabled": True}}
    with posthog.new_context():
        posthog.identify_context(contextual)
        result = posthog.get_feature_flag("beta", person, send_feature_flag_events=False)
        enabled = posthog.feature_enabled("beta", person, send_feature_flag_events=False)
    assert result in (None, True) and enabled in (None, True)


@settings(RELAXED, max_examples=40)
@given(key=mostly(plain_text, values), groups=st.one_of(st.none(), values, st.dictionaries(keys, ids, max_size=2)))
def test_feature_flag_calls_never_raise_for_any_key_or_groups(server, pipeline, key, groups):
    server.flags = {"beta": {"enabled": True}}
    result = posthog.get_feature_flag(key, "u", groups=groups, send_feature_flag_events=False)
    assert result is None or isinstance(result, (bool, str))


# --- ids that differ stay different -----------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda i: posthog.set("user" + i, {"a": 1}),
        lambda i: posthog.set_once(distinct_id="user" + i, properties={"a": 1}),
        lambda i: posthog.capture("user" + i, "e"),
        lambda i: posthog.alias("anon" + i, "user"),
        lambda i: posthog.alias("anon", "user" + i),
        lambda i: posthog.group_identify("company", "acme" + i),
        lambda i: posthog.group_identify("company" + i, "acme"),
        lambda i: posthog.capture("u", "e", groups={"company": "acme" + i}),
        lambda i: posthog.capture("u", "e", groups={"company" + i: "acme"}),
        lambda i: posthog.capture("u", "signup" + i),
    ],
    ids=["set", "set_once", "capture", "alias_previous", "alias_id", "group_key", "group_type", "capture_group_key",
         "capture_group_type", "event_name"],
)  # fmt: skip
def test_ids_differing_only_in_surrogates_are_refused_never_merged(call, server, pipeline, caplog):
    assert [call(suffix) for suffix in ("\ud800", "\udc00", "\udcff")] == [None, None, None]
    assert call("-ok") is not None
    pipeline.flush()
    assert len(server.events) == 1
    text = json.dumps(server.events)
    assert "?" not in text and "\\ufffd" not in text
    assert sum(posthog.drop_counts().values()) == 3
    assert "surrogate code points" in caplog.text


def test_undecodable_bytes_and_their_surrogateescape_text_are_treated_alike(server, pipeline):
    raw = b"caf\xe9"
    escaped = raw.decode("utf-8", "surrogateescape")
    assert posthog.set("u", {"raw": raw, "escaped": escaped, "ok": 1}) is not None
    assert posthog.set(escaped, {"a": 1}) is None
    pipeline.flush()
    (event,) = server.events
    assert event["$set"] == {"ok": 1}
    assert posthog.drop_counts() == {"invalid_property": 2, "invalid_id": 1}


def test_handwritten_records_with_surrogates_lose_the_value_not_the_batch(server, pipeline, provider):
    """A record from elsewhere (no emit-side checks): the exporter applies the same rule."""
    other = provider.get_logger("elsewhere")
    other.emit(event_name="posthog.set", attributes={"posthog.distinct_id": "hand"},
               body={"ok": "yes", "bad": "x\udcff", "list": ["a", "b\ud800"], "k\udc80": 1})  # fmt: skip
    other.emit(event_name="posthog.set", attributes={"posthog.distinct_id": "hand\udcff"}, body={"a": 1})
    uuid = posthog.set("ours", {"a": 1})
    pipeline.flush()
    by_person = {e["distinct_id"]: e for e in server.events}
    assert sorted(by_person) == ["hand", "ours"] and by_person["ours"]["uuid"] == uuid
    assert by_person["hand"]["$set"] == {"ok": "yes", "list": ["a"]}
    assert posthog.drop_counts() == {"invalid_property": 3, "invalid_id": 1}


# --- numbers, cycles, sizes ---------------------------------------------------------------------------


def test_ints_past_64_bits_become_floats_and_past_floats_are_dropped(server, pipeline):
    uuid = posthog.set("u", {"i64": 2**63 - 1, "u64": 2**64, "huge": 10**400, "unprintable": 10**5000, "ok": 1})
    pipeline.flush()
    (event,) = server.events
    assert event["uuid"] == uuid
    assert event["$set"] == {"i64": 2**63 - 1, "u64": float(2**64), "ok": 1}
    assert posthog.drop_counts() == {"invalid_property": 2}


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


def test_maps_and_values_that_fail_when_read_are_dropped_alone(server, pipeline):
    uuid = posthog.set("u", {"broken": HostileMap(a=1), "obj": Hostile(), "ok": 1})
    assert posthog.set("u", HostileMap(a=1)) is None  # nothing readable left: no properties
    pipeline.flush()
    (event,) = server.events
    assert (event["uuid"], event["$set"]) == (uuid, {"ok": 1})
    assert posthog.drop_counts() == {"invalid_property": 3, "no_properties": 1}


def test_huge_strings_are_dropped_with_the_event_not_the_batch(server, pipeline):
    big = posthog.set("u", {"blob": "x" * (2 * 1024 * 1024)})
    small = posthog.set("u", {"ok": decimal.Decimal("1.5")})
    assert big is not None
    pipeline.flush()
    assert [e["uuid"] for e in server.events] == [small]
    assert posthog.drop_counts() == {"too_large": 1}
