"""Contexts as PostHog's SDK 7.91.1 has them, differentially: ``new_context(fresh, capture_exceptions,
client)``, ``client.new_context()`` / ``client.scoped()`` (which send an escaping exception with that
client), ``scoped()``, ``set_context_device_id`` (flag requests carry it), ``tag``, sessions."""

from __future__ import annotations

import pytest

import posthog_otel

from .conftest import API_KEY
from .test_posthog_compat import compare, shapes


@pytest.fixture
def posthog_sdk():
    return pytest.importorskip("posthog")


def contexts_app(client):
    module = posthog_otel if isinstance(client, posthog_otel.Client) else __import__("posthog")
    returned = []
    with client.new_context():
        client.identify_context("u1")
        client.set_context_session("s1")
        client.tag("plan", "pro")
        returned.append(client.capture("in_context"))
        with client.new_context(fresh=True):
            client.tag("inner", 1)
            returned.append(client.capture("fresh_context"))
        with client.new_context():
            client.identify_context("u2")
            returned.append(client.capture("nested"))

    @client.scoped()
    def handler():
        client.identify_context("u3")
        returned.append(client.capture("scoped"))

    handler()
    try:
        with client.new_context(capture_exceptions=True):
            client.identify_context("u4")
            raise KeyError("missing")
    except KeyError:
        pass
    try:
        with module.new_context(capture_exceptions=True, client=client):
            module.identify_context("u5")
            raise ValueError("bad")
    except ValueError:
        pass
    try:
        with client.new_context(capture_exceptions=False):
            raise ValueError("not sent")
    except ValueError:
        pass
    returned.append(client.get_tags())
    return returned


def test_contexts_send_what_posthogs_do(server, posthog_sdk):
    expected, actual, returned_reference, returned = compare(server, contexts_app, posthog_sdk)

    def essence(events):
        kept = []
        for event in events:
            properties = event["properties"]
            kept.append((event["event"], event["distinct_id"], properties.get("$session_id"), properties.get("plan"),
                         properties.get("inner"), sorted(properties.get("$context_tags") or [])))  # fmt: skip
        return kept

    assert essence(actual) == essence(expected)
    assert shapes(returned) == shapes(returned_reference)
    assert [e["distinct_id"] for e in actual if e["event"] == "$exception"] == ["u4", "u5"]


def test_the_context_device_id_reaches_flag_requests_as_posthogs_does(posthog_sdk):
    """``set_context_device_id``: a /flags request made inside carries it (both SDKs, one server)."""
    from .test_flags import FlagServer

    flag_server = FlagServer()
    try:
        for sdk, client in ((posthog_sdk, posthog_sdk.Posthog(API_KEY, host=flag_server.url)),
                            (posthog_otel, posthog_otel.Posthog(API_KEY, host=flag_server.url))):  # fmt: skip
            with sdk.new_context():
                sdk.set_context_device_id("device-9")
                client.get_feature_flag("checkout", "u1", send_feature_flag_events=False)
            client.shutdown()
        bodies = flag_server.flag_posts()
        assert [b.get("device_id") for b in bodies] == ["device-9", "device-9"]
    finally:
        flag_server.close()
