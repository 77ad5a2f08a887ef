"""The flag calls PostHog's SDK 7.x added (``get_feature_flag_result``, ``get_remote_config_payload``,
the evaluation runtimes), posthog-node's overrides, each against its oracle on one local PostHog;
and the outage bound: with a PostHog that accepts connections and never answers, every flag call
returns within ``flags_timeout``."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

import posthog_otel
from posthog_otel._flags import service as flag_service
from posthog_otel._local.server import LocalServer
from posthog_otel._local.store import Store

from .conftest import API_KEY
from .node_support import posthog_node
from .test_flags import DEFINITIONS, PERSONAL_KEY, flag

#: The oracle's definitions: the flags of test_flags, one PostHog must decide (a cohort it
#: cannot read here: undecidable locally), runtimes, and a remote config flag.
FLAGS = {
    "flags": [
        *DEFINITIONS["flags"],
        flag(
            "static-cohort",
            {"properties": [{"key": "id", "type": "cohort", "value": 404}], "rollout_percentage": 100},
            id=7,
        ),  # fmt: skip
        {**flag("client-only", {"properties": [], "rollout_percentage": 100}, id=8), "evaluation_runtime": "client"},
        {**flag("server-only", {"properties": [], "rollout_percentage": 100}, id=9), "evaluation_runtime": "server"},
        {**flag("odd-runtime", {"properties": [], "rollout_percentage": 0}, id=10), "evaluation_runtime": " SERVER "},
        {
            **flag(
                "remote-settings",
                {"properties": [], "rollout_percentage": 100},
                id=11,
                payloads={"true": '{"limit": 10, "mode": "strict"}'},
            ),
            "is_remote_configuration": True,
        },  # fmt: skip
    ],
    "group_type_mapping": DEFINITIONS["group_type_mapping"],
    "cohorts": {},
}

#: (key, distinct_id, keywords) read by both SDKs.
READS = [
    ("beta", "u1", {"person_properties": {"plan": "enterprise"}}),
    ("beta", "u2", {"person_properties": {"plan": "free"}}),
    ("checkout", "u1", {}),
    ("company-tools", "u1", {"groups": {"company": "acme"}, "group_properties": {"company": {"size": 500}}}),
    ("company-tools", "u1", {}),
    ("static-cohort", "u1", {}),
    ("no-such-flag", "u1", {}),
    ("beta", "u3", {"only_evaluate_locally": True}),
]


@pytest.fixture
def posthog_sdk():
    return pytest.importorskip("posthog")


@pytest.fixture
def local_posthog(tmp_path):
    store = Store(tmp_path / "local.sqlite3")
    with LocalServer(store, flags=json.loads(json.dumps(FLAGS))) as running:
        yield running
    store.close()
    flag_service.reset()


def clients(local_posthog, posthog_sdk, personal: bool):
    keys = {"personal_api_key": PERSONAL_KEY} if personal else {}
    theirs = posthog_sdk.Posthog(API_KEY, host=local_posthog.url, **({"secret_key": PERSONAL_KEY} if personal else {}))
    ours = posthog_otel.Posthog(API_KEY, host=local_posthog.url, flush_interval=0.05, **keys)
    if personal:
        theirs.load_feature_flags()
        assert ours.load_feature_flags()
    return theirs, ours


def fields(result):
    return None if result is None else (result.key, result.enabled, result.variant, result.payload, result.reason)


@pytest.mark.parametrize("personal", [True, False], ids=["local", "remote"])
def test_get_feature_flag_result_is_posthogs(local_posthog, posthog_sdk, personal):
    theirs, ours = clients(local_posthog, posthog_sdk, personal)
    try:
        for key, person, keywords in READS:
            expected = fields(theirs.get_feature_flag_result(key, person, **keywords))
            assert fields(ours.get_feature_flag_result(key, person, **keywords)) == expected, (key, person, keywords)
            assert ours.get_feature_flag_result(key, person, **keywords) == ours.get_feature_flag_result(
                key, person, **keywords
            )
    finally:
        theirs.shutdown()
        ours.shutdown()


def test_a_result_reports_the_flag_called_event_once(local_posthog, posthog_sdk):
    theirs, ours = clients(local_posthog, posthog_sdk, personal=True)
    try:
        for client in (theirs, ours):
            for _ in range(2):
                client.get_feature_flag_result("checkout", "event-person")
            client.flush()
        called = [e for e in local_posthog.store.events() if e["event"] == "$feature_flag_called"]
        assert [(e["distinct_id"], e["properties"]["$feature_flag_response"]) for e in called] == [
            ("event-person", "test")] * 2  # fmt: skip
    finally:
        theirs.shutdown()
        ours.shutdown()


def test_the_module_and_async_calls_answer_the_same(local_posthog, monkeypatch):
    posthog_otel.configure(api_key=API_KEY, host=local_posthog.url, personal_api_key=PERSONAL_KEY,
                           schedule_delay_millis=50)  # fmt: skip
    assert posthog_otel.load_feature_flags()
    result = posthog_otel.get_feature_flag_result("checkout", "u1")
    assert fields(result) == ("checkout", True, "test", "big button", None) and result.get_value() == "test"
    assert asyncio.run(posthog_otel.get_feature_flag_result_async("checkout", "u1")) == result


@pytest.mark.parametrize("key", ["remote-settings", "beta", "no-such-flag"])
def test_get_remote_config_payload_is_posthogs(local_posthog, posthog_sdk, key):
    theirs, ours = clients(local_posthog, posthog_sdk, personal=True)
    try:
        assert ours.get_remote_config_payload(key) == theirs.get_remote_config_payload(key)
    finally:
        theirs.shutdown()
        ours.shutdown()


def test_a_remote_config_key_is_quoted_in_the_path(local_posthog):
    """PostHog's SDK puts the key in the path as it is (``a/b`` asks another endpoint); ours quotes it."""
    local_posthog.flags.definitions.by_key["with/slash?"] = local_posthog.flags.definitions.by_key["remote-settings"]
    client = posthog_otel.Posthog(API_KEY, host=local_posthog.url, personal_api_key=PERSONAL_KEY)
    try:
        assert client.get_remote_config_payload("with/slash?") == '{"limit": 10, "mode": "strict"}'
    finally:
        client.shutdown()


def test_remote_config_needs_a_personal_key_as_posthogs_does(local_posthog, posthog_sdk, caplog):
    theirs, ours = clients(local_posthog, posthog_sdk, personal=False)
    try:
        assert (
            ours.get_remote_config_payload("remote-settings")
            is theirs.get_remote_config_payload("remote-settings")
            is None
        )
        assert "needs a personal API key" in caplog.text
    finally:
        theirs.shutdown()
        ours.shutdown()


def test_evaluation_runtimes_are_posthogs(local_posthog, posthog_sdk):
    theirs, ours = clients(local_posthog, posthog_sdk, personal=True)
    try:
        for key in ("client-only", "server-only", "odd-runtime", "beta", "no-such-flag"):
            expected = theirs.get_feature_flag_evaluation_runtime(key)
            assert ours.get_feature_flag_evaluation_runtime(key) == (None if expected is None else expected.value)
        for runtime in ("all", "client", "server", posthog_otel.FeatureFlagEvaluationRuntime.SERVER):
            wanted = runtime if isinstance(runtime, str) and not hasattr(runtime, "value") else runtime.value
            assert ours.get_feature_flag_keys_by_evaluation_runtime(runtime) == \
                theirs.get_feature_flag_keys_by_evaluation_runtime(wanted)  # fmt: skip
        assert ours.get_feature_flag_keys_by_evaluation_runtime("browser") == []  # PostHog's raises ValueError
    finally:
        theirs.shutdown()
        ours.shutdown()


# --- overrides: posthog-node's overrideFeatureFlags ---------------------------------------------

OVERRIDES = [
    {"beta": False, "checkout": "control", "invented": True},
    ["beta", "invented"],
    {"flags": {"checkout": "control"}, "payloads": {"checkout": {"discount": 20}, "beta": [1, 2]}},
    {"flags": ["beta"]},
    {"payloads": {"beta": "only a payload"}},
    {"flags": True},  # a flag named "flags"
]
NODE_READS = [("getFeatureFlag", "beta"), ("getFeatureFlag", "checkout"), ("getFeatureFlag", "invented"),
              ("getFeatureFlag", "flags"), ("getFeatureFlagPayload", "checkout"), ("getFeatureFlagPayload", "beta"),
              ("isFeatureEnabled", "invented")]  # fmt: skip
OURS = {"getFeatureFlag": "get_feature_flag", "getFeatureFlagPayload": "get_feature_flag_payload",
        "isFeatureEnabled": "feature_enabled"}  # fmt: skip


@pytest.mark.parametrize("overrides", OVERRIDES, ids=range(len(OVERRIDES)))
def test_overrides_answer_as_posthog_nodes(local_posthog, tmp_path, overrides):
    calls = [{"call": "overrideFeatureFlags", "args": [overrides]}]
    # getFeatureFlagPayload's third argument is matchValue: options only for the others
    calls += [{"call": call, "args": [key, "u1"] + ([] if "Payload" in call else [{"personProperties": {"plan": "free"}}])}
              for call, key in NODE_READS]  # fmt: skip
    expected = posthog_node(local_posthog.url, API_KEY, calls, tmp_path, {"personalApiKey": PERSONAL_KEY})[1:]
    client = posthog_otel.Posthog(API_KEY, host=local_posthog.url, personal_api_key=PERSONAL_KEY, flush_interval=0.05)
    try:
        assert client.load_feature_flags()
        client.override_feature_flags(overrides)
        actual = [getattr(client, OURS[call])(key, "u1", **({} if "Payload" in call else {"person_properties": {"plan": "free"}}))
                  for call, key in NODE_READS]  # fmt: skip
    finally:
        client.shutdown()
    assert actual == expected


def test_overrides_need_no_posthog_and_send_nothing(server):
    posthog_otel.override_feature_flags(
        {"flags": {"new-ui": "variant-b", "gone": None}, "payloads": {"new-ui": {"a": 1}}}
    )
    try:
        assert posthog_otel.get_feature_flag("new-ui", "u1") == "variant-b"
        assert posthog_otel.get_feature_flag("gone", "u1") is None
        assert posthog_otel.get_feature_flag_payload("new-ui", "u1") == {"a": 1}
        assert posthog_otel.get_all_flags("u1") == {"new-ui": "variant-b"}
        assert posthog_otel.get_feature_flag_result("new-ui") == posthog_otel.FeatureFlagResult(
            "new-ui", True, "variant-b", {"a": 1}, None)  # fmt: skip
        client = posthog_otel.Posthog(API_KEY, host=server.url)
        assert (
            client.get_feature_flag("new-ui", "u1", only_evaluate_locally=True, send_feature_flag_events=False) is None
        )  # a client's overrides are its own
        client.shutdown()
        assert server.requests == []
    finally:
        posthog_otel.override_feature_flags(False)
    assert posthog_otel.get_feature_flag("new-ui", "u1", only_evaluate_locally=True) is None


def test_snapshots_carry_the_overrides(local_posthog):
    client = posthog_otel.Posthog(API_KEY, host=local_posthog.url, personal_api_key=PERSONAL_KEY, flush_interval=0.05)
    try:
        assert client.load_feature_flags()
        client.override_feature_flags({"checkout": "control", "beta": None})
        flags = client.evaluate_flags("u1")
        assert flags.get_flag("checkout") == "control" and flags.get_flag_payload("checkout") == "big button"
        assert "beta" not in flags.keys
    finally:
        client.shutdown()


# --- the outage bound -----------------------------------------------------------------------------


@pytest.fixture
def black_hole():
    """A PostHog that accepts connections (the kernel completes them) and never answers a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    yield "http://127.0.0.1:%d" % listener.getsockname()[1]
    listener.close()


TIMEOUT = 1.5  # flags_timeout for the test; the old code took 2x it (first read) and 10 s (load)
SLACK = 1.0  # what a busy machine may add to a bounded wait (thread start-up, scheduling)

CALLS = [
    ("load_feature_flags", lambda: posthog_otel.load_feature_flags()),
    ("first read", lambda: posthog_otel.get_feature_flag("beta", "u1")),
    ("second read", lambda: posthog_otel.get_feature_flag("beta", "u2")),
    ("result", lambda: posthog_otel.get_feature_flag_result("checkout", "u1")),
    ("only locally", lambda: posthog_otel.feature_enabled("beta", "u1", only_evaluate_locally=True)),
    ("payload", lambda: posthog_otel.get_feature_flag_payload("beta", "u1")),
    ("all flags", lambda: posthog_otel.get_all_flags("u1")),
    ("snapshot", lambda: posthog_otel.evaluate_flags("u1")),
    ("remote config", lambda: posthog_otel.get_remote_config_payload("remote-settings")),
    ("async read", lambda: asyncio.run(posthog_otel.get_feature_flag_async("beta", "u3"))),
]


@pytest.mark.slow
@pytest.mark.parametrize("first", [0, 1], ids=["load_first", "read_first"])
def test_every_flag_call_returns_within_flags_timeout_when_posthog_never_answers(black_hole, first, caplog):
    posthog_otel.configure(api_key=API_KEY, host=black_hole, personal_api_key=PERSONAL_KEY,
                           feature_flags_request_timeout_seconds=TIMEOUT, schedule_delay_millis=50)  # fmt: skip
    for name, call in CALLS[first:] + CALLS[:first]:
        started = time.monotonic()
        answer = call()
        took = time.monotonic() - started
        assert took < TIMEOUT + SLACK, "%s took %.2fs" % (name, took)
        assert answer in (None, False, {}, []) or name == "snapshot", (name, answer)


# --- flag reads as OpenTelemetry data -----------------------------------------------------------


def test_flag_reads_add_the_semantic_conventions_event_to_the_current_span(local_posthog, monkeypatch):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracers = TracerProvider()
    exported = InMemorySpanExporter()
    tracers.add_span_processor(SimpleSpanProcessor(exported))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", tracers)
    client = posthog_otel.Posthog(API_KEY, host=local_posthog.url, personal_api_key=PERSONAL_KEY,
                                  flag_evaluation_events=True, flush_interval=0.05)  # fmt: skip
    quiet = posthog_otel.Posthog(API_KEY, host=local_posthog.url, personal_api_key=PERSONAL_KEY, flush_interval=0.05)
    try:
        assert client.load_feature_flags()
        client.override_feature_flags({"pinned": True})
        with tracers.get_tracer("app").start_as_current_span("request"):
            client.get_feature_flag("checkout", "u1")
            client.feature_enabled("beta", "u1", person_properties={"plan": "free"})
            client.get_feature_flag_result("no-such-flag", "u1", only_evaluate_locally=True)
            client.get_feature_flag("pinned", "u1")
            client.evaluate_flags("u1").get_flag("checkout")
            quiet.get_feature_flag("checkout", "u1")  # the switch is off there
        client.get_feature_flag("checkout", "u2")  # no span: nothing to add to
    finally:
        client.shutdown()
        quiet.shutdown()
    (span,) = exported.get_finished_spans()
    events = [dict(e.attributes) for e in span.events]
    assert [e.name for e in span.events] == ["feature_flag.evaluation"] * 5
    provider = {"feature_flag.provider.name": "PostHog"}
    assert events == [
        {"feature_flag.key": "checkout", **provider, "feature_flag.result.value": "test",
         "feature_flag.result.variant": "test", "feature_flag.result.reason": "split"},
        {"feature_flag.key": "beta", **provider, "feature_flag.result.value": False, "feature_flag.result.reason": "default"},
        {"feature_flag.key": "no-such-flag", **provider, "error.type": "flag_not_found", "feature_flag.result.reason": "error"},
        {"feature_flag.key": "pinned", **provider, "feature_flag.result.value": True, "feature_flag.result.reason": "static"},
        {"feature_flag.key": "checkout", **provider, "feature_flag.result.value": "test",
         "feature_flag.result.variant": "test", "feature_flag.result.reason": "split"},
    ]  # fmt: skip
