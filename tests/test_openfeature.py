"""posthog-otel's OpenFeature provider through OpenFeature's own client, against PostHog's official
provider (``openfeature-provider-posthog``, on PostHog's SDK 7.91.1) on one local PostHog: the
same values, variants, reasons and error codes, for every flag type; and the OpenFeature provider
rules (never an exception, the default on error, metadata, async)."""

from __future__ import annotations

import asyncio
import json

import pytest

openfeature = pytest.importorskip("openfeature")

from openfeature import api  # noqa: E402
from openfeature.evaluation_context import EvaluationContext  # noqa: E402

import posthog_otel  # noqa: E402
from posthog_otel._local.server import LocalServer  # noqa: E402
from posthog_otel._local.store import Store  # noqa: E402
from posthog_otel.integrations.openfeature import PostHogProvider  # noqa: E402

from .conftest import API_KEY  # noqa: E402
from .test_flags import PERSONAL_KEY, flag  # noqa: E402
from .test_flags_calls import FLAGS  # noqa: E402

NUMBERS = {
    "flags": [
        *FLAGS["flags"],
        flag(
            "limit",
            {"properties": [], "rollout_percentage": 100},
            id=20,
            multivariate={"variants": [{"key": "0x10", "rollout_percentage": 100}]},
        ),  # fmt: skip
        flag(
            "ratio",
            {"properties": [], "rollout_percentage": 100},
            id=21,
            multivariate={"variants": [{"key": "2.5", "rollout_percentage": 100}]},
        ),  # fmt: skip
        flag("config", {"properties": [], "rollout_percentage": 100}, id=22, payloads={"true": '{"rows": 50}'}),
    ],
    "group_type_mapping": FLAGS["group_type_mapping"],
    "cohorts": {},
}
CONTEXTS = [
    EvaluationContext("u1", {"plan": "enterprise"}),
    EvaluationContext("u2", {"plan": "free"}),
    EvaluationContext("u1", {"groups": {"company": "acme"}, "group_properties": {"company": {"size": 500}}}),
    EvaluationContext(None, {"plan": "enterprise"}),
]
READS = [
    ("get_boolean_details", key, False) for key in ("beta", "checkout", "company-tools", "no-such-flag", "config")
] + [
    ("get_string_details", "checkout", "none"), ("get_string_details", "beta", "none"),
    ("get_integer_details", "limit", 0), ("get_integer_details", "checkout", 0), ("get_integer_details", "beta", 0),
    ("get_float_details", "ratio", 0.0), ("get_float_details", "limit", 0.0),
    ("get_object_details", "config", {}), ("get_object_details", "beta", {}), ("get_object_details", "checkout", {}),
]  # fmt: skip


@pytest.fixture
def local_posthog(tmp_path):
    store = Store(tmp_path / "local.sqlite3")
    with LocalServer(store, flags=json.loads(json.dumps(NUMBERS))) as running:
        yield running
    store.close()
    api.clear_providers()


def details(client, call, key, default, context):
    found = getattr(client, call)(key, default, context)
    return (found.value, found.variant, str(found.reason), found.error_code and str(found.error_code))


def test_every_resolution_is_the_official_providers(local_posthog):
    posthog_sdk = pytest.importorskip("posthog")
    official = pytest.importorskip("openfeature.contrib.provider.posthog")
    theirs = posthog_sdk.Posthog(API_KEY, host=local_posthog.url, secret_key=PERSONAL_KEY)
    ours = posthog_otel.Posthog(API_KEY, host=local_posthog.url, personal_api_key=PERSONAL_KEY, flush_interval=0.05)
    try:
        api.set_provider_and_wait(official.PostHogProvider(theirs), "theirs")
        api.set_provider_and_wait(PostHogProvider(ours), "ours")
        for context in CONTEXTS:
            for call, key, default in READS:
                expected = details(api.get_client("theirs"), call, key, default, context)
                actual = details(api.get_client("ours"), call, key, default, context)
                assert actual == expected, (call, key, context)
    finally:
        theirs.shutdown()
        ours.shutdown()


def test_the_module_provider_uses_the_context_person_and_never_raises(local_posthog):
    posthog_otel.configure(api_key=API_KEY, host=local_posthog.url, personal_api_key=PERSONAL_KEY,
                           schedule_delay_millis=50)  # fmt: skip
    api.set_provider_and_wait(PostHogProvider())
    client = api.get_client()
    assert api.get_provider_metadata().name == "PostHogProvider"
    assert client.get_boolean_value("beta", False) is False  # no person at all: the default
    assert str(client.get_boolean_details("beta", False).error_code) == "TARGETING_KEY_MISSING"
    with posthog_otel.new_context():
        posthog_otel.identify_context("u1")
        assert client.get_string_value("checkout", "none") == "test"
        assert client.get_boolean_value("beta", False, EvaluationContext(attributes={"plan": "enterprise"})) is True
    assert asyncio.run(client.get_string_value_async("checkout", "none", EvaluationContext("u1"))) == "test"
    assert asyncio.run(client.get_object_value_async("config", {}, EvaluationContext("u1"))) == {"rows": 50}
    assert client.get_integer_value("limit", 0, EvaluationContext("u1")) == 16


def test_overrides_reach_the_provider(local_posthog):
    client = posthog_otel.Posthog(API_KEY, host=local_posthog.url, personal_api_key=PERSONAL_KEY, flush_interval=0.05)
    try:
        client.override_feature_flags({"flags": {"checkout": "control"}, "payloads": {"checkout": {"a": 1}}})
        api.set_provider_and_wait(PostHogProvider(client))
        found = api.get_client().get_object_details("checkout", {}, EvaluationContext("u1"))
        assert (found.value, found.variant) == ({"a": 1}, "control")
    finally:
        client.shutdown()
