"""The same calls through PostHog's own SDK and through posthog_otel give the same events.

Both run against the same loopback server.  Compared: everything except what must
differ (uuid and clock unless the call fixed them, the library's name and version,
the process description PostHog's SDK computes with an extra dependency), and the
documented differences of docs/schema.md:
- in ``$set``/``$set_once``, the reference also writes ``$context_tags`` and
  ``$session_id`` into the person's properties; posthog_otel keeps them out of the
  person and puts ``$session_id`` on the event (the comparison moves the reference's
  ``$session_id`` there, so a wrong or missing value still fails).

PostHog's SDK (the oracle) needs Python >= 3.10: without it only the comparisons are
skipped; every scenario still runs through posthog_otel into the local PostHog, whose
validation is capture's.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

import posthog_otel
from posthog_otel._local.server import LocalServer
from posthog_otel._local.store import Store

from .conftest import API_KEY

NOISE = {"$lib", "$lib_version", "$python_runtime", "$python_version", "$os", "$os_version", "$os_distro"}
FIXED_UUID = "0b0bd9ba-7cf6-4f9b-a3f5-1c6e0f0a2d4e"
FIXED_TIME = dt.datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=dt.timezone.utc)


@pytest.fixture
def posthog_sdk():
    """PostHog's own SDK, the oracle (Python >= 3.10): tests that compare with it skip without it."""
    return pytest.importorskip("posthog")


class Reference:
    """PostHog's SDK with the call surface the scenarios use."""

    def __init__(self, url: str, posthog) -> None:
        self.client = posthog.Client(API_KEY, host=url, sync_mode=True)
        self.set = self.client.set
        self.set_once = self.client.set_once
        self.group_identify = self.client.group_identify
        self.alias = self.client.alias
        self.capture = self.client.capture
        self.new_context = lambda fresh=False: posthog.new_context(fresh=fresh, capture_exceptions=False)
        self.identify_context = posthog.identify_context
        self.tag = posthog.tag
        self.set_context_session = posthog.set_context_session


def scenario_set(api):
    api.set(distinct_id="user123", properties={"email": "user@example.com", "plan": "premium", "age": 28})


def scenario_set_once(api):
    api.set_once(distinct_id="user123", properties={"first_visit": "2024-01-10"})


def scenario_set_numeric_id(api):
    api.set(distinct_id=42, properties={"verified": True, "score": 95.5})


def scenario_set_fixed_uuid_and_time(api):
    api.set(distinct_id="u", properties={"a": 1}, uuid=FIXED_UUID, timestamp=FIXED_TIME)


def scenario_set_iso_timestamp(api):
    api.set(distinct_id="u", properties={"a": 1}, timestamp="2024-09-07T10:30:00Z")


def scenario_set_offset_timestamp(api):
    api.set(distinct_id="u", properties={"a": 1}, timestamp="2024-09-07T10:30:00+0200")


def scenario_set_naive_old_timestamp(api):
    api.set(distinct_id="u", properties={"a": 1}, timestamp=dt.datetime(2020, 5, 1, 12, 0, 0))


def scenario_set_geoip_enabled(api):
    api.set(distinct_id="u", properties={"a": 1}, disable_geoip=False)


def scenario_set_without_id_or_properties(api):
    api.set(properties={"a": 1})
    api.set(distinct_id="u", properties={})
    api.set_once(distinct_id="u")


def scenario_context_set(api):
    with api.new_context():
        api.identify_context("user_456")
        api.tag("session_type", "premium")
        api.set_context_session("sess-1")
        api.set(properties={"last_login": "2024-09-07T10:30:00Z", "session_type": "explicit wins"})
        api.set_once(properties={"first_login": "2024-09-07"})


def scenario_context_explicit_id_wins(api):
    with api.new_context():
        api.identify_context("from_context")
        api.set(distinct_id="explicit", properties={"a": 1})
        api.capture("clicked", distinct_id="explicit")


def scenario_nested_contexts(api):
    with api.new_context():
        api.identify_context("outer")
        api.tag("outer_tag", 1)
        with api.new_context():
            api.tag("inner_tag", 2)
            api.capture("inherits")
        with api.new_context(fresh=True):
            api.tag("fresh_tag", 3)
            api.capture("fresh")


def scenario_group_identify(api):
    api.group_identify("company", "acme_corp", {"name": "Acme Corporation", "employees": 250})


def scenario_group_identify_with_person_and_session(api):
    with api.new_context():
        api.set_context_session("sess-2")
        api.group_identify("team", "engineering", {"lead": "jane"}, distinct_id="user_1")


def scenario_group_identify_without_anything(api):
    api.group_identify("company", "", {"a": 1})
    api.group_identify("", "acme", {"a": 1})
    api.group_identify("company", "acme")


def scenario_alias(api):
    api.alias(previous_id="anonymous_user_abc123", distinct_id="user_456")


def scenario_alias_from_context(api):
    with api.new_context():
        api.identify_context("user_456")
        api.set_context_session("sess-3")
        api.alias(previous_id="anon", distinct_id=None)


def scenario_alias_missing_ids(api):
    api.alias(previous_id="", distinct_id="user")
    api.alias(previous_id="anon", distinct_id=None)


def scenario_capture_grouped(api):
    api.capture(
        "feature_used",
        distinct_id="user_789",
        properties={"feature": "advanced_dashboard"},
        groups={"company": "company_xyz", "team": "team_frontend"},
    )


def scenario_capture_groups_property(api):
    """A ``$groups`` property is the event's groups; ``groups=`` wins for a type named in both."""
    api.capture("grouped_by_property", distinct_id="u", properties={"$groups": {"company": "acme"}, "plan": "x"})
    api.capture(
        "grouped_both_ways", distinct_id="u", properties={"$groups": {"company": "old"}}, groups={"company": "new"}
    )


def scenario_capture_personless(api):
    api.capture("page_viewed", properties={"page": "landing"})


def scenario_capture_in_context(api):
    with api.new_context():
        api.identify_context("user_456")
        api.tag("ab_test_group", "variant_b")
        api.set_context_session("sess-4")
        api.capture("dashboard_viewed")


def scenario_capture_set_properties(api):
    api.capture("signed_up", distinct_id="u", properties={"$set": {"plan": "free"}, "$set_once": {"src": "ad"}})


def scenario_capture_value_types(api):
    api.capture(
        "typed",
        distinct_id="u",
        properties={
            "list": ["technology", "sports"],
            "tuple": (1, 2),
            "uuid": uuid.UUID(FIXED_UUID),
            "date": dt.date(2024, 1, 15),
            "aware": FIXED_TIME,
            "naive": dt.datetime(2024, 1, 15, 10, 30),
            "none": None,
            "nan": float("nan"),
            "bytes": b"caf\xc3\xa9",
        },
    )


SCENARIOS = [value for name, value in sorted(globals().items()) if name.startswith("scenario_")]


def normalise(event, ours: bool):
    event = dict(event)
    properties = {k: v for k, v in event.pop("properties", {}).items() if k not in NOISE}
    if event["uuid"] != FIXED_UUID:
        event["uuid"] = "<uuid>"
    if not event["timestamp"].startswith(("2024", "2020")):
        event["timestamp"] = "<now>"
    random_id = properties.get("$process_person_profile") is False or (
        event["event"] == "$groupidentify" and _is_uuid(event["distinct_id"])
    )
    if random_id:
        event["distinct_id"] = "<random>"
    for key in ("$set", "$set_once"):
        if key == event["event"] and key in event and not ours:  # the documented difference, made ours
            person = dict(event[key])
            person.pop("$context_tags", None)
            if "$session_id" in person:
                assert "$session_id" not in properties
                properties["$session_id"] = person.pop("$session_id")
            event[key] = person
    if "$context_tags" in properties:
        properties["$context_tags"] = sorted(properties["$context_tags"])
    event["properties"] = properties
    return event


def _is_uuid(text):
    try:
        uuid.UUID(text)
    except (TypeError, ValueError):
        return False
    return True


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__[len("scenario_") :])
def test_same_events_as_posthog_sdk(scenario, server, pipeline, posthog_sdk):
    reference = Reference(server.url, posthog_sdk)
    scenario(reference)
    reference.client.flush()
    expected = [normalise(e, ours=False) for e in server.events]
    server.reset()

    scenario(posthog_otel)
    pipeline.flush()
    actual = [normalise(e, ours=True) for e in server.events]

    assert actual == expected


def test_return_values_match_posthog_sdk(server, pipeline, posthog_sdk):
    reference = Reference(server.url, posthog_sdk)
    calls = [
        lambda api: api.set(distinct_id="u", properties={"a": 1}),
        lambda api: api.set(properties={"a": 1}),
        lambda api: api.set(distinct_id="u", properties={}),
        lambda api: api.alias(previous_id="", distinct_id="u"),
        lambda api: api.group_identify("company", ""),
        lambda api: api.capture("e", uuid=FIXED_UUID),
    ]
    for call in calls:
        theirs, ours = call(reference), call(posthog_otel)
        assert (theirs is None) == (ours is None)
        if theirs == FIXED_UUID:
            assert ours == FIXED_UUID


class Recording:
    """posthog_otel, noting the uuid each operation returns."""

    OPERATIONS = ("set", "set_once", "group_identify", "alias", "capture")

    def __init__(self) -> None:
        self.returned = []

    def __getattr__(self, name):
        call = getattr(posthog_otel, name)
        if name not in self.OPERATIONS:
            return call

        def recorded(*args, **kwargs):
            self.returned.append(call(*args, **kwargs))
            return self.returned[-1]

        return recorded


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__[len("scenario_") :])
def test_every_scenario_is_accepted_whole_by_capture_validation(scenario, tmp_path, provider):
    """Without the oracle too: what posthog_otel sends passes the local PostHog's checks
    (capture's), and every operation that returned a uuid is stored under it."""
    store = Store(tmp_path / "scenarios.sqlite3")
    api = Recording()
    with LocalServer(store) as local:
        pipeline = posthog_otel.configure(api_key=API_KEY, host=local.url, logger_provider=provider)
        scenario(api)
        assert pipeline.flush()
    assert not {"rejected", "too_large", "server_drop"} & set(posthog_otel.drop_counts())  # caller-side drops aside
    assert sorted(e["uuid"] for e in store.events()) == sorted(u for u in api.returned if u is not None)
    store.close()
