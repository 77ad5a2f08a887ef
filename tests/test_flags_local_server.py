"""The local PostHog's flags: definitions served with ETags, ``/flags`` evaluated, both file formats."""

from __future__ import annotations

import json
import uuid
import warnings

import pytest
import requests

import posthog_otel
from posthog_otel._local.server import LocalServer
from posthog_otel._local.store import Store

from .conftest import API_KEY
from .test_flags import DEFINITIONS, PERSONAL_KEY, fresh_flag_service  # noqa: F401 (fixture)

BEARER = {"Authorization": "Bearer phx_anything"}


@pytest.fixture
def store(tmp_path):
    db = Store(tmp_path / "local.sqlite3")
    yield db
    db.close()


@pytest.fixture
def local(store):
    with LocalServer(store, flags=json.loads(json.dumps(DEFINITIONS))) as server:
        yield server


def ask(server, **body):
    body.setdefault("api_key", API_KEY)
    body.setdefault("distinct_id", "u1")
    return requests.post(server.url + "/flags/?v=4", json=body, timeout=5).json()["flags"]


def test_definitions_are_served_with_an_etag_and_304(local):
    url = local.url + "/flags/definitions?token=%s&send_cohorts" % API_KEY
    with requests.Session() as session:
        first = session.get(url, headers=BEARER, timeout=5)
        assert first.status_code == 200 and [f["key"] for f in first.json()["flags"]] == [
            "beta",
            "checkout",
            "company-tools",
        ]
        again = session.get(url, headers={**BEARER, "If-None-Match": first.headers["ETag"]}, timeout=5)
        assert again.status_code == 304 and again.content == b""
        assert session.get(url, headers=BEARER, timeout=5).status_code == 200  # the connection still works


def test_definitions_need_a_bearer_key_as_in_posthog(local):
    answer = requests.get(local.url + "/flags/definitions?token=x", timeout=5)
    assert answer.status_code == 401 and "Bearer" in answer.json()["detail"]


def test_flags_are_evaluated_for_the_request(local):
    flags = ask(local, person_properties={"plan": "enterprise"}, groups={"company": "acme"},
                group_properties={"company": {"size": 5}})  # fmt: skip
    assert flags["beta"]["enabled"] is True and flags["beta"]["metadata"]["payload"] == '{"theme": "dark"}'
    assert flags["checkout"]["variant"] == "test"
    assert flags["company-tools"]["enabled"] is False
    assert set(ask(local, flag_keys_to_evaluate=["beta", "nope"])) == {"beta"}


def test_what_cannot_be_decided_is_not_matched_and_says_why(local):
    flags = ask(local, flag_keys_to_evaluate=["beta"])
    assert flags["beta"]["enabled"] is False
    assert "property 'plan' was not given" in flags["beta"]["reason"]["description"]


def test_stored_properties_are_used_and_the_request_overrides_them(local):
    batch = [{"event": "$set", "distinct_id": "u1", "uuid": str(uuid.uuid4()), "$set": {"plan": "enterprise"}},
             {"event": "$groupidentify", "distinct_id": "u1", "uuid": str(uuid.uuid4()),
              "properties": {"$group_type": "company", "$group_key": "acme", "$group_set": {"size": 500}}}]  # fmt: skip
    assert requests.post(local.url + "/batch/", json={"api_key": API_KEY, "batch": batch}, timeout=5).status_code == 200
    flags = ask(local, groups={"company": "acme"})
    assert flags["beta"]["enabled"] is True and flags["company-tools"]["enabled"] is True
    assert ask(local, person_properties={"plan": "free"})["beta"]["enabled"] is False


def test_a_bad_body_is_a_400(local):
    answer = requests.post(local.url + "/flags/?v=4", data=b"[not json", timeout=5)
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]


def test_the_simple_file_is_served_as_definitions_too(store, provider):
    with LocalServer(store, flags={"new_dashboard": True, "checkout": "test", "off": False}) as server:
        posthog_otel.configure(
            api_key=API_KEY, host=server.url, personal_api_key=PERSONAL_KEY, logger_provider=provider
        )
        assert posthog_otel.load_feature_flags()
        assert posthog_otel.get_all_flags("u1", only_evaluate_locally=True) == {
            "new_dashboard": True,
            "checkout": "test",
            "off": False,
        }


def test_a_simple_file_with_other_values_is_refused():
    with pytest.raises(ValueError, match="'n': a simple flag file maps keys to true, false or a variant name"):
        LocalServer(None, flags={"n": 3})  # type: ignore[arg-type]


def test_posthogs_sdk_with_a_personal_key_agrees_with_the_local_server(local, provider):
    posthog = pytest.importorskip("posthog")
    theirs = posthog.Client(API_KEY, host=local.url, secret_key=PERSONAL_KEY, send=False, sync_mode=True,
                            enable_local_evaluation=False)  # fmt: skip
    posthog_otel.configure(api_key=API_KEY, host=local.url, personal_api_key=PERSONAL_KEY, logger_provider=provider)
    posthog_otel.load_feature_flags()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for props in ({"plan": "enterprise"}, {"plan": "free"}, {}):
            for person in ("u1", "u2", "u3"):
                kwargs = {
                    "person_properties": props,
                    "groups": {"company": "acme"},
                    "group_properties": {"company": {"size": 500}},
                }
                assert posthog_otel.get_all_flags(person, **kwargs) == theirs.get_all_flags(person, **kwargs)
    theirs.shutdown()
