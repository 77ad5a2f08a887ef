"""OpenTelemetry's attribute limits: an operation they would alter is refused, not altered.

Each test builds its own LoggerProvider after setting the environment, the way an
application configured by OTEL_* variables gets its limits (SDK 1.45 reads them when the
provider is built; 1.39 reads them per record).
"""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits

import posthog_otel as posthog

from .conftest import API_KEY

PROVIDER_LIMITS = hasattr(LogRecordLimits(), "max_log_record_attributes")  # SDK >= 1.45
LENGTH_SETTINGS = ["OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"] + (
    ["OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT"] if PROVIDER_LIMITS else []
)
COUNT_SETTINGS = ["OTEL_ATTRIBUTE_COUNT_LIMIT"] + (["OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT"] if PROVIDER_LIMITS else [])


@pytest.fixture
def limited(server, monkeypatch):
    """configure() on a provider built after ``limited(NAME=value, ...)`` set the environment."""
    providers = []

    def build(**env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        provider = LoggerProvider(shutdown_on_exit=False)
        providers.append(provider)
        return posthog.configure(api_key=API_KEY, host=server.url, logger_provider=provider, schedule_delay_millis=50)

    yield build
    for provider in providers:
        provider.shutdown()


@pytest.mark.parametrize("setting", LENGTH_SETTINGS)
def test_ids_longer_than_the_length_limit_are_refused_not_cut(setting, limited, server, caplog):
    pipeline = limited(**{setting: "40"})
    same_prefix = ["x" * 40 + "-one", "x" * 40 + "-two"]  # cut at 40 these would be one person
    returned = [posthog.set(person, {"a": 1}) for person in same_prefix]
    returned.append(posthog.alias("y" * 41, "u"))
    returned.append(posthog.group_identify("company", "z" * 41))
    kept = posthog.set("short-id", {"a": 1})
    pipeline.flush()
    assert returned == [None] * 4
    assert [(e["distinct_id"], e["uuid"]) for e in server.events] == [("short-id", kept)]
    assert posthog.drop_counts() == {"otel_attribute_limit": 4}
    assert setting in caplog.text and "length limit is 40" in caplog.text


def test_a_length_limit_below_a_uuid_refuses_everything_and_says_why(limited, server, caplog):
    pipeline = limited(OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="20")
    assert posthog.capture("u", "e") is None
    assert posthog.group_identify("company", "acme") is None
    pipeline.flush()
    assert server.events == []
    assert posthog.drop_counts() == {"otel_attribute_limit": 2}
    assert "posthog.uuid is 36 characters" in caplog.text


def test_within_the_length_limit_everything_arrives_intact(limited, server):
    pipeline = limited(OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="36")
    returned = posthog.capture("u" * 36, "e", groups={"company": "k" * 36}, uuid="12345678-1234-5678-9abc-def012345678")
    pipeline.flush()
    (event,) = server.events
    assert (event["uuid"], event["distinct_id"], event["properties"]["$groups"]) == (
        returned,
        "u" * 36,
        {"company": "k" * 36},
    )


@pytest.mark.parametrize("setting", COUNT_SETTINGS)
def test_more_attributes_than_the_count_limit_are_refused_not_evicted(setting, limited, server, caplog):
    pipeline = limited(**{setting: "4"})
    assert posthog.capture("u", "e") is not None  # posthog.event, .distinct_id, .uuid, .seq: 4
    assert posthog.capture("u", "e", groups={"company": "acme"}) is None  # 5: the SDK would evict posthog.event
    pipeline.flush()
    assert [e["event"] for e in server.events] == ["e"]
    assert posthog.drop_counts() == {"otel_attribute_limit": 1}  # and no SDK drop (otel_queue_full) either
    assert setting in caplog.text and "count limit is 4" in caplog.text


def test_too_many_groups_under_the_default_limit_are_refused_with_the_setting_named(pipeline, server, caplog):
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    assert posthog.capture("u", "e", groups={"g%d" % i: "k" for i in range(124)}) is not None  # 128 attributes
    assert posthog.capture("u", "e", groups={"g%d" % i: "k" for i in range(125)}) is None  # 129
    pipeline.flush()
    (event,) = server.events
    assert len(event["properties"]["$groups"]) == 124
    assert posthog.drop_counts() == {"otel_attribute_limit": 1}
    assert "OTEL_ATTRIBUTE_COUNT_LIMIT" in caplog.text


@pytest.mark.skipif(not PROVIDER_LIMITS, reason="LoggerProvider(log_record_limits=...) is SDK 1.45+")
def test_limits_given_in_code_are_the_ones_applied(server, monkeypatch, caplog):
    monkeypatch.setenv("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "1")  # the code's choice wins over the environment
    limits = LogRecordLimits(max_log_record_attribute_length=10, max_log_record_attributes=LogRecordLimits.UNSET)
    provider = LoggerProvider(shutdown_on_exit=False, log_record_limits=limits)
    pipeline = posthog.configure(api_key=API_KEY, host=server.url, logger_provider=provider, schedule_delay_millis=50)
    try:
        assert posthog.set("u", {"a": 1}) is None  # the uuid alone is 36
        assert posthog.drop_counts() == {"otel_attribute_limit": 1}
        assert "length limit is 10" in caplog.text and "count limit" not in caplog.text
    finally:
        pipeline.shutdown()
        provider.shutdown()


@pytest.mark.skipif(not PROVIDER_LIMITS, reason="LoggerProvider(log_record_limits=...) is SDK 1.45+")
def test_an_unlimited_count_given_in_code_refuses_nothing(server):
    limits = LogRecordLimits(max_log_record_attributes=LogRecordLimits.UNSET)
    provider = LoggerProvider(shutdown_on_exit=False, log_record_limits=limits)
    pipeline = posthog.configure(api_key=API_KEY, host=server.url, logger_provider=provider, schedule_delay_millis=50)
    try:
        assert posthog.capture("u", "e", groups={"g%d" % i: "k" for i in range(300)}) is not None
        pipeline.flush()
        (event,) = server.events
        assert len(event["properties"]["$groups"]) == 300
    finally:
        pipeline.shutdown()
        provider.shutdown()


@pytest.mark.skipif(PROVIDER_LIMITS, reason="SDK 1.39 reads the limits per record")
def test_sdk_139_limits_follow_the_environment_per_record(limited, server, monkeypatch):
    pipeline = limited()
    assert posthog.set("u", {"a": 1}) is not None
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "10")
    assert posthog.set("u", {"a": 1}) is None
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "not-a-number")
    assert posthog.set("u", {"a": 1}) is None  # the SDK would raise on every record
    pipeline.flush()
    assert len(server.events) == 1
    assert posthog.drop_counts() == {"otel_attribute_limit": 1, "invalid_otel_setting": 1}


def test_an_unset_length_limit_refuses_nothing(limited, server):
    pipeline = limited(OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="")  # "" is the SDK's "unset"
    person = "p" * 10_000
    assert posthog.capture(person, "e", groups={"g%d" % i: "k" for i in range(100)}) is not None
    pipeline.flush()
    (event,) = server.events
    assert event["distinct_id"] == person and len(event["properties"]["$groups"]) == 100
