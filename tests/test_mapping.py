"""The mapping, alone: one Operation in, one PostHog event out, every field rule a row.

The id generator is pinned, so an event is one exact dict: a rule that changes shows up
as a row that fails.  (End-to-end shapes are compared with PostHog's own SDK in
test_conformance.py.)
"""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posthog_otel import _mapping
from posthog_otel._mapping import Defaults, Operation, Skipped, to_posthog_event, to_posthog_events

LIBRARY = {"$lib": "posthog-otel", "$lib_version": "9.9.9", "$is_server": True}
SYSTEM = {"$os": "Linux"}
DEFAULTS = Defaults(library=LIBRARY, system=SYSTEM, disable_geoip=True)
UUID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
T0 = 1_705_314_600_123_456_789  # 2024-01-15T10:30:00.123456789Z
ISO0 = "2024-01-15T10:30:00.123456+00:00"
BY_SERVER = {**LIBRARY, "$geoip_disable": True}


def pinned():
    counter = itertools.count(1)
    return lambda: "pinned-%d" % next(counter)


def op(name, attributes=None, body=None, time=T0, trace_id=0, span_id=0, resource=None):
    attributes = {"posthog.uuid": UUID, **(attributes or {})}
    return Operation(name, attributes, body, time, trace_id, span_id, resource or {})


def event(operation, defaults=DEFAULTS):
    return to_posthog_event(operation, defaults, pinned())


# --- operations: (operation, the exact event) --------------------------------------------------

SHAPES = [
    (
        "set",
        op("posthog.set", {"posthog.distinct_id": "u"}, {"plan": "pro"}),
        {"event": "$set", "distinct_id": "u", "$set": {"plan": "pro"}, "uuid": UUID, "timestamp": ISO0,
         "properties": BY_SERVER},
    ),
    (
        "set_once",
        op("posthog.set_once", {"posthog.distinct_id": "u"}, {"first": 1}),
        {"event": "$set_once", "distinct_id": "u", "$set_once": {"first": 1}, "uuid": UUID, "timestamp": ISO0,
         "properties": BY_SERVER},
    ),
    (
        "group_identify",
        op("posthog.group_identify", {"posthog.group_type": "company", "posthog.group_key": "acme",
                                      "posthog.distinct_id": "u"}, {"size": 5}),
        {"event": "$groupidentify", "distinct_id": "u", "uuid": UUID, "timestamp": ISO0,
         "properties": {"$group_type": "company", "$group_key": "acme", "$group_set": {"size": 5}, **BY_SERVER}},
    ),
    (
        "group_identify_without_person_or_body",
        op("posthog.group_identify", {"posthog.group_type": "company", "posthog.group_key": "acme"}),
        {"event": "$groupidentify", "distinct_id": "pinned-1", "uuid": UUID, "timestamp": ISO0,
         "properties": {"$group_type": "company", "$group_key": "acme", "$group_set": {}, **BY_SERVER}},
    ),
    (
        "alias",
        op("posthog.alias", {"posthog.distinct_id": "user", "posthog.previous_id": "anon"}),
        {"event": "$create_alias", "distinct_id": "anon", "uuid": UUID, "timestamp": ISO0,
         "properties": {"distinct_id": "anon", "alias": "user", **BY_SERVER}},
    ),
    (
        "capture",
        op("posthog.capture", {"posthog.event": "signup", "posthog.distinct_id": "u", "posthog.groups.company": "acme",
                               "posthog.groups.team": 7}, {"plan": "free"}),
        {"event": "signup", "distinct_id": "u", "uuid": UUID, "timestamp": ISO0,
         "properties": {"plan": "free", "$groups": {"company": "acme", "team": "7"}, **SYSTEM, **BY_SERVER}},
    ),
    (
        "capture_personless",
        op("posthog.capture", {"posthog.event": "ping"}),
        {"event": "ping", "distinct_id": "pinned-1", "uuid": UUID, "timestamp": ISO0,
         "properties": {"$process_person_profile": False, **SYSTEM, **BY_SERVER}},
    ),
    (
        "capture_personless_keeps_an_explicit_profile_flag",
        op("posthog.capture", {"posthog.event": "ping"}, {"$process_person_profile": True}),
        {"event": "ping", "distinct_id": "pinned-1", "uuid": UUID, "timestamp": ISO0,
         "properties": {"$process_person_profile": True, **SYSTEM, **BY_SERVER}},
    ),
]  # fmt: skip


@pytest.mark.parametrize("name, operation, expected", SHAPES, ids=[row[0] for row in SHAPES])
def test_event_shapes(name, operation, expected):
    assert event(operation) == expected


# --- single field rules: (operation, field getter, expected) ---------------------------------------


ID_KEYS = {"posthog.distinct_id", "user.id", "enduser.id"}


def person(attributes=None, resource=None):
    """A ``posthog.set`` record; with distinct id "u" unless the row is about ids."""
    attributes = dict(attributes or {})
    if resource is None and not ID_KEYS & set(attributes):
        attributes["posthog.distinct_id"] = "u"
    return op("posthog.set", attributes, {"a": 1}, resource=resource)


def distinct_id(e):
    return e["distinct_id"]


def props(key):
    return lambda e: e["properties"].get(key, "<absent>")


FIELDS = [
    # distinct id: posthog.distinct_id, then user.id, then enduser.id; the record first, then the resource
    ("id_first", person({"posthog.distinct_id": "a", "user.id": "b", "enduser.id": "c"}), distinct_id, "a"),
    ("id_user_id", person({"user.id": "b", "enduser.id": "c"}), distinct_id, "b"),
    ("id_enduser_id", person({"enduser.id": "c"}), distinct_id, "c"),
    ("id_empty_is_absent", person({"posthog.distinct_id": "", "user.id": "b"}), distinct_id, "b"),
    ("id_from_resource", person({}, resource={"user.id": "r"}), distinct_id, "r"),
    ("id_record_beats_resource", person({"enduser.id": "c"}, resource={"posthog.distinct_id": "r"}), distinct_id, "c"),
    ("id_not_text_is_stringified", person({"posthog.distinct_id": 42}), distinct_id, "42"),
    # uuid: canonical kept; every form UUID() reads is rewritten to canonical; anything else is new
    ("uuid_canonical", person({"posthog.uuid": UUID}), lambda e: e["uuid"], UUID),
    ("uuid_upper", person({"posthog.uuid": UUID.upper()}), lambda e: e["uuid"], UUID),
    ("uuid_braced", person({"posthog.uuid": "{%s}" % UUID}), lambda e: e["uuid"], UUID),
    ("uuid_urn", person({"posthog.uuid": "urn:uuid:" + UUID}), lambda e: e["uuid"], UUID),
    ("uuid_hex", person({"posthog.uuid": UUID.replace("-", "")}), lambda e: e["uuid"], UUID),
    ("uuid_invalid", person({"posthog.uuid": "not-a-uuid"}), lambda e: e["uuid"], "pinned-1"),
    ("uuid_not_text", person({"posthog.uuid": 12}), lambda e: e["uuid"], "pinned-1"),
    # time: the record's, to the microsecond; posthog.timestamp wins (times OTLP cannot hold)
    ("time_record", person(), lambda e: e["timestamp"], ISO0),
    ("time_epoch_plus_1us", op("posthog.set", {"posthog.distinct_id": "u"}, {"a": 1}, time=1000),
     lambda e: e["timestamp"], "1970-01-01T00:00:00.000001+00:00"),
    ("time_attribute", person({"posthog.timestamp": "1960-01-01T00:00:00+00:00"}), lambda e: e["timestamp"],
     "1960-01-01T00:00:00+00:00"),
    ("time_attribute_offset", person({"posthog.timestamp": "1901-01-01T01:00:00.500000+01:00"}), lambda e: e["timestamp"],
     "1901-01-01T00:00:00.500000+00:00"),
    ("time_attribute_z", person({"posthog.timestamp": "1969-07-20T20:17:40Z"}), lambda e: e["timestamp"],
     "1969-07-20T20:17:40+00:00"),
    ("time_attribute_naive_is_utc", person({"posthog.timestamp": "1950-06-01T12:00:00"}), lambda e: e["timestamp"],
     "1950-06-01T12:00:00+00:00"),
    # session: posthog.session_id, then session.id; an explicit $session_id property wins
    ("session", person({"posthog.session_id": "s1", "session.id": "s2"}), props("$session_id"), "s1"),
    ("session_fallback", person({"session.id": "s2"}), props("$session_id"), "s2"),
    ("session_absent", person(), props("$session_id"), "<absent>"),
    ("session_property_wins", op("posthog.capture", {"posthog.event": "e", "posthog.session_id": "s1"},
                                 {"$session_id": "mine"}), props("$session_id"), "mine"),
    # trace and span ids, hex, when the record was made inside a span
    ("trace_id", op("posthog.set", {"posthog.distinct_id": "u"}, {"a": 1}, trace_id=0xAB, span_id=0xCD),
     props("$trace_id"), "%032x" % 0xAB),
    ("span_id", op("posthog.set", {"posthog.distinct_id": "u"}, {"a": 1}, trace_id=0xAB, span_id=0xCD),
     props("$span_id"), "%016x" % 0xCD),
    ("no_trace", person(), props("$trace_id"), "<absent>"),
    # GeoIP: the record's posthog.disable_geoip, else the exporter's default
    ("geoip_default", person(), props("$geoip_disable"), True),
    ("geoip_enabled_by_record", person({"posthog.disable_geoip": False}), props("$geoip_disable"), "<absent>"),
    ("geoip_disabled_by_record", person({"posthog.disable_geoip": True}), props("$geoip_disable"), True),
    # groups: posthog.groups.* attributes, joined with a $groups map in the body (the attributes win)
    ("groups_attributes", op("posthog.capture", {"posthog.event": "e", "posthog.groups.company": "acme"}),
     props("$groups"), {"company": "acme"}),
    ("groups_body_map", op("posthog.capture", {"posthog.event": "e"}, {"$groups": {"company": "acme"}}),
     props("$groups"), {"company": "acme"}),
    ("groups_joined", op("posthog.capture", {"posthog.event": "e", "posthog.groups.company": "new"},
                         {"$groups": {"company": "old", "team": "eng"}}), props("$groups"), {"company": "new", "team": "eng"}),
    # system properties on captures only, library properties on everything
    ("system_on_capture", op("posthog.capture", {"posthog.event": "e"}), props("$os"), "Linux"),
    ("no_system_on_set", person(), props("$os"), "<absent>"),
    ("library_on_set", person(), props("$lib"), "posthog-otel"),
]  # fmt: skip


@pytest.mark.parametrize("name, operation, field, expected", FIELDS, ids=[row[0] for row in FIELDS])
def test_field_rules(name, operation, field, expected):
    assert field(event(operation)) == expected


def test_geoip_follows_the_exporters_default_when_the_record_is_silent():
    allowed = Defaults(library=LIBRARY, system=SYSTEM, disable_geoip=False)
    assert "$geoip_disable" not in event(person(), allowed)["properties"]


# --- records that cannot become an event: (operation, reason) ---------------------------------------

SKIPS = [
    ("set_without_person", op("posthog.set", {}, {"a": 1}), "no_distinct_id"),
    ("set_without_body", op("posthog.set", {"posthog.distinct_id": "u"}), "no_properties"),
    ("set_with_empty_body", op("posthog.set", {"posthog.distinct_id": "u"}, {}), "no_properties"),
    ("set_once_with_list_body", op("posthog.set_once", {"posthog.distinct_id": "u"}, ["a"]), "no_properties"),
    ("group_without_key", op("posthog.group_identify", {"posthog.group_type": "company"}), "no_group"),
    ("alias_without_previous", op("posthog.alias", {"posthog.distinct_id": "u"}), "no_distinct_id"),
    ("alias_without_person", op("posthog.alias", {"posthog.previous_id": "anon"}), "no_distinct_id"),
    ("capture_without_event", op("posthog.capture", {"posthog.distinct_id": "u"}), "no_event"),
    ("capture_with_event_not_text", op("posthog.capture", {"posthog.event": 5}), "no_event"),
    # the one text rule (docs/schema.md): an id with surrogates is never merged into another
    ("surrogate_distinct_id", person({"posthog.distinct_id": "u\udcff"}), "invalid_id"),
    ("surrogate_previous_id", op("posthog.alias", {"posthog.distinct_id": "u", "posthog.previous_id": "a\ud800"}),
     "invalid_id"),
    ("surrogate_group_key", op("posthog.group_identify", {"posthog.group_type": "company",
                                                          "posthog.group_key": "k\udc80"}), "invalid_id"),
    ("surrogate_group_in_capture", op("posthog.capture", {"posthog.event": "e", "posthog.groups.company": "\udc80"}),
     "invalid_id"),
    ("surrogate_event_name", op("posthog.capture", {"posthog.event": "e\udc80"}), "invalid_id"),
    ("surrogate_session", person({"posthog.session_id": "s\udc80"}), "invalid_id"),
    ("unprintable_int_id", person({"posthog.distinct_id": 10**5000}), "invalid_id"),
    ("invalid_time_attribute", person({"posthog.timestamp": "yesterday"}), "invalid_timestamp"),
]  # fmt: skip


@pytest.mark.parametrize("name, operation, reason", SKIPS, ids=[row[0] for row in SKIPS])
def test_unusable_records_are_skipped_with_a_reason(name, operation, reason):
    with pytest.raises(Skipped) as skipped:
        event(operation)
    assert skipped.value.reason == reason


def test_a_batch_keeps_good_events_ignores_foreign_records_and_reports_skips():
    operations = [
        person({"posthog.distinct_id": "a"}),
        op("app.log", {"user.id": "x"}, "hello"),  # not an operation: ignored, not skipped
        op("posthog.set", {}, {"a": 1}),
        person({"posthog.distinct_id": "b"}),
    ]
    events, skipped = to_posthog_events(operations, DEFAULTS, pinned())
    assert [e["distinct_id"] for e in events] == ["a", "b"]
    assert [s.reason for s in skipped] == ["no_distinct_id"]


def test_the_body_is_copied_not_shared():
    body = {"plan": "pro"}
    result = event(op("posthog.capture", {"posthog.event": "e"}, body))
    result["properties"]["plan"] = "changed"
    assert body == {"plan": "pro"}


def test_fresh_ids_come_only_from_the_generator():
    new_ids = pinned()
    first = to_posthog_event(op("posthog.capture", {"posthog.event": "e"}), DEFAULTS, new_ids)
    second = to_posthog_event(op("posthog.capture", {"posthog.event": "e", "posthog.uuid": "bad"}), DEFAULTS, new_ids)
    assert (first["distinct_id"], second["distinct_id"], second["uuid"]) == ("pinned-1", "pinned-2", "pinned-3")


@settings(max_examples=500, deadline=None)
@given(times=st.lists(st.integers(min_value=-(10**18), max_value=2**64 - 1), min_size=1, max_size=4))
def test_record_times_are_written_as_datetime_would(times):
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    for time_unix_nano in times:  # several in a row: the text of the last second is reused
        expected = (epoch + dt.timedelta(microseconds=time_unix_nano // 1000)).isoformat()
        assert _mapping.iso_timestamp(time_unix_nano) == expected


def test_a_first_time_in_the_second_before_the_epoch():
    code = "from posthog_otel._mapping import iso_timestamp; print(iso_timestamp(-500_000_000))"
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert first.strip() == "1969-12-31T23:59:59.500000+00:00"  # the first call of a process: no cached second


def test_ids_made_for_records_without_one_are_distinct_version_4_uuids():
    import uuid

    made = [_mapping.new_uuid() for _ in range(2000)]
    assert len(set(made)) == len(made)
    for text in made:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
