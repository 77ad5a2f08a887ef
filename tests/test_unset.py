"""``unset``: person properties removed, the way posthog-node's ``unsetPersonProperties`` sends it
(PostHog's Python SDK has no such call), through the schema, delivered in order, applied by the
local PostHog (and shown in a person's property history)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import posthog_otel as posthog
from posthog_otel import _mapping, _schema
from posthog_otel._local.views import person_history
from posthog_otel._mapping import Defaults, Operation

from .conftest import API_KEY
from .node_support import posthog_node

LIBRARY = ("$lib", "$lib_version", "$geoip_disable", "$is_server")


def essence(event):
    """What identifies an unset on the wire, whichever library sent it."""
    properties = {k: v for k, v in event["properties"].items() if k not in LIBRARY}
    return {"event": event["event"], "distinct_id": event["distinct_id"], "$set": event.get("$set"),
            "properties": properties}  # fmt: skip


@pytest.mark.parametrize(
    "names",
    [["plan", "email"], "plan", ["plan", "", "  ", "email"], ["späť", "$initial_referrer"]],
)
def test_the_event_is_posthog_nodes(names, server, tmp_path):
    """Differential: posthog-node 5.70.0's ``unsetPersonProperties`` against ours, one server."""
    posthog_node(server.url, API_KEY, [{"call": "unsetPersonProperties",
                                        "args": [{"distinctId": "user-1", "properties": names}]}], tmp_path)  # fmt: skip
    expected = [essence(e) for e in server.events]
    server.reset()
    client = posthog.Posthog(API_KEY, host=server.url, flush_interval=0.05)
    try:
        assert client.unset("user-1", names) is not None
        client.flush()
    finally:
        client.shutdown()
    assert [essence(e) for e in server.events] == expected
    assert expected and expected[0]["event"] == "$set" and "$set" not in server.events[0]


def test_call_shapes_and_the_context_person(server, pipeline):
    posthog.unset("u1", ["plan"])
    posthog.unset(distinct_id="u1", properties="plan")
    with posthog.new_context():
        posthog.identify_context("u1")
        posthog.tag("not", "a person property")  # tags are not names to remove
        posthog.unset(["plan"])
        posthog.unset(properties=("plan",))
    pipeline.flush()
    assert [(e["distinct_id"], e["properties"]["$unset"]) for e in server.events] == [("u1", ["plan"])] * 4


@pytest.mark.parametrize(
    "call,reason",
    [
        (lambda: posthog.unset(["plan"]), "no_distinct_id"),
        (lambda: posthog.unset("u1"), "no_properties"),
        (lambda: posthog.unset("u1", []), "no_properties"),
        (lambda: posthog.unset("u1", ["", " "]), "no_properties"),
        (lambda: posthog.unset("u1", {"plan": True}), "invalid_property"),
        (lambda: posthog.unset("u1", 42), "invalid_property"),
    ],
)
def test_nothing_to_remove_is_dropped_said_and_counted(call, reason, server, pipeline, caplog):
    assert call() is None
    pipeline.flush()
    assert server.events == []
    assert reason in posthog.drop_counts()
    assert "unset()" in caplog.text


def test_a_name_that_cannot_be_text_is_left_out_and_counted(server, pipeline, caplog):
    assert posthog.unset("u1", ["plan", "bad\udcff", 7]) is not None
    pipeline.flush()
    assert server.events[0]["properties"]["$unset"] == ["plan", "7"]
    assert posthog.drop_counts() == {"invalid_property": 1}
    assert "the property name" in caplog.text


def test_the_local_posthog_removes_the_keys_and_keeps_the_history(posthog_local):
    posthog.set("u1", {"plan": "pro", "email": "a@example.com", "seats": 3})
    posthog.unset("u1", ["plan", "email", "never_set"])
    person = posthog_local.person("u1")
    assert person["properties"] == {"seats": 3}
    history = person_history(posthog_local.store, person["id"])
    assert [(c["operation"], c["applied"]) for c in history["plan"]] == [("$set", True), ("$unset", True)]
    assert [(c["operation"], c["applied"]) for c in history["never_set"]] == [("$unset", False)]


def test_a_hand_written_record_and_a_span_event_map_the_same():
    """Other languages (the gateway) write the names as the body; a span event, as its attributes."""
    defaults = Defaults(library={}, system={})
    record = Operation(_schema.UNSET, {_schema.DISTINCT_ID: "u1"}, ["plan", 3, "email"], 1)
    span_event = Operation(_schema.UNSET, {_schema.DISTINCT_ID: "u1"}, {"plan": True, "email": True}, 1)
    for operation in (record, span_event):
        event = _mapping.to_posthog_event(operation, defaults)
        assert (event["event"], event["properties"]["$unset"]) == ("$set", ["plan", "email"])
    with pytest.raises(_mapping.Skipped):
        _mapping.to_posthog_event(Operation(_schema.UNSET, {_schema.DISTINCT_ID: "u1"}, [], 1), defaults)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    distinct_id=st.one_of(st.none(), st.text(max_size=5), st.integers(), st.lists(st.text(max_size=3), max_size=3)),
    properties=st.one_of(st.none(), st.text(max_size=5), st.lists(st.one_of(st.text(max_size=4), st.integers(),
                         st.none(), st.floats()), max_size=4), st.dictionaries(st.text(max_size=3), st.integers())),
)  # fmt: skip
def test_unset_never_raises(pipeline, distinct_id, properties):
    returned = posthog.unset(distinct_id, properties)
    assert returned is None or isinstance(returned, str)
