"""Capture V1: the same events as PostHog's SDK in v1 mode, partial retries, the local server.

Only the comparison with PostHog's SDK needs it (Python >= 3.10); the rest runs everywhere.
"""

from __future__ import annotations

import json

import pytest

import posthog_otel as posthog
from posthog_otel import PostHogLogExporter, RetryPolicy
from posthog_otel._local.server import LocalServer
from posthog_otel._local.store import Store

from .conftest import API_KEY
from .support import Fault
from .test_conformance import FIXED_UUID, NOISE, SCENARIOS, Reference, _is_uuid, posthog_sdk  # noqa: F401 (fixture)

FAST = RetryPolicy(backoff_base=0.01, backoff_max=0.05)


@pytest.fixture
def v1_pipeline(server, provider):
    return posthog.configure(
        exporter=PostHogLogExporter(api_key=API_KEY, host=server.url, capture_mode="v1", retry_policy=FAST),
        logger_provider=provider,
        schedule_delay_millis=50,
    )


def v1_events(server):
    return [e for r in server.accepted if r.path == "/i/v1/analytics/events" for e in r.payload["batch"]]


def normalise(event, ours):
    event = dict(event)
    properties = {k: v for k, v in event.pop("properties").items() if k not in NOISE}
    if event["uuid"] != FIXED_UUID:
        event["uuid"] = "<uuid>"
    if not event["timestamp"].startswith(("2024", "2020")):
        event["timestamp"] = "<now>"
    if event["options"].get("process_person_profile") is False or (
        event["event"] == "$groupidentify" and _is_uuid(event["distinct_id"])
    ):
        event["distinct_id"] = "<random>"
    if event["event"] in ("$set", "$set_once") and not ours:  # the documented difference, in v1's shape
        key = event["event"]
        person = dict(properties[key])
        person.pop("$context_tags", None)
        if "$session_id" in person:
            assert "session_id" not in event
            event["session_id"] = person.pop("$session_id")
        properties[key] = person
    if "$context_tags" in properties:
        properties["$context_tags"] = sorted(properties["$context_tags"])
    event["properties"] = properties
    return event


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__[len("scenario_") :])
def test_same_v1_events_as_posthog_sdk(scenario, server, v1_pipeline, posthog_sdk):
    reference = Reference(server.url, posthog_sdk)
    reference.client = posthog_sdk.Client(API_KEY, host=server.url, sync_mode=True, capture_mode="v1")
    for name in ("set", "set_once", "group_identify", "alias", "capture"):
        setattr(reference, name, getattr(reference.client, name))
    scenario(reference)
    reference.client.flush()
    expected = [normalise(e, ours=False) for e in v1_events(server)]
    server.reset()
    scenario(posthog)
    v1_pipeline.flush()
    assert [normalise(e, ours=True) for e in v1_events(server)] == expected


def test_v1_request_headers_and_envelope(server, v1_pipeline):
    server.fail_next(Fault(503))
    posthog.set("u", {"a": 1})
    v1_pipeline.flush()
    first, second = server.requests
    assert first.path == second.path == "/i/v1/analytics/events"
    assert second.headers["Authorization"] == "Bearer " + API_KEY
    assert second.headers["PostHog-Sdk-Info"].startswith("posthog-otel/")
    assert (first.headers["PostHog-Attempt"], second.headers["PostHog-Attempt"]) == ("1", "2")
    assert first.headers["PostHog-Request-Id"] == second.headers["PostHog-Request-Id"]
    assert first.payload["created_at"] == second.payload["created_at"]
    assert "api_key" not in second.payload
    (event,) = second.payload["batch"]
    assert event["properties"]["$set"] == {"a": 1} and "$lib" not in event["properties"]


def test_only_events_answered_retry_are_resent_and_drops_are_counted(server, v1_pipeline, caplog):
    uuids = [posthog.set("u", {"n": i}) for i in range(3)]
    answer = {uuids[0]: {"result": "ok"}, uuids[1]: {"result": "retry"}, uuids[2]: {"result": "drop", "details": "bad"}}
    server.fail_next(Fault(200, body=json.dumps({"results": answer})))
    v1_pipeline.flush()
    first, second = server.requests
    assert [e["uuid"] for e in second.payload["batch"]] == [uuids[1]]
    assert posthog.drop_counts() == {"server_drop": 1}
    assert "PostHog dropped 1 event(s)" in caplog.text


def test_a_long_per_event_answer_is_read_whole(server, v1_pipeline):
    """PostHog answers each of up to hundreds of events: an answer over a kilobyte is read, not
    taken as unreadable (which would count every event as delivered)."""
    uuids = [posthog.set("u", {"n": i}) for i in range(40)]
    answer = {u: {"result": "retry"} for u in uuids}
    body = json.dumps({"results": answer})
    assert len(body) > 1000
    server.fail_next(Fault(200, body=body))
    v1_pipeline.flush()
    first, second = server.requests[:2]
    assert [e["uuid"] for e in second.payload["batch"]] == [e["uuid"] for e in first.payload["batch"]]


def test_local_server_speaks_v1(tmp_path, provider):
    store = Store(tmp_path / "v1.sqlite3")
    with LocalServer(store) as local:
        pipeline = posthog.configure(api_key=API_KEY, host=local.url, capture_mode="v1", logger_provider=provider)
        with posthog.new_context():
            posthog.identify_context("user")
            posthog.set_context_session("s-1")
            posthog.set({"plan": "pro"})
            posthog.capture("viewed")
        posthog.capture("anonymous_view")
        assert pipeline.flush()
    assert store.person("user")["properties"] == {"plan": "pro"}
    assert [p["distinct_ids"] for p in store.persons()] == [["user"]]  # the personless one made none
    viewed = store.events(event="viewed")[0]
    assert viewed["properties"]["$session_id"] == "s-1"
    store.close()


def test_local_server_v1_needs_a_bearer_token(tmp_path):
    import requests

    store = Store(tmp_path / "v1.sqlite3")
    with LocalServer(store) as local:
        response = requests.post(local.url + "/i/v1/analytics/events", json={"batch": []}, timeout=5)
    assert response.status_code == 401 and "Bearer" in response.json()["error"]
    store.close()


# --- Capture V1's compression (PostHog's capture_compression) ---------------------------------


def _v1_client(server, **options):
    return posthog.Posthog(API_KEY, host=server.url, capture_mode="v1", **options)


def _sent_once(server, client):
    client.capture("u", "compressed", {"n": 1})
    assert client.flush()
    client.shutdown()
    (request,) = server.requests
    return request


def test_deflate_is_a_zlib_stream_under_its_content_encoding(server):
    import zlib

    request = _sent_once(server, _v1_client(server, capture_compression="deflate"))
    assert request.headers["Content-Encoding"] == "deflate"
    (event,) = json.loads(zlib.decompress(request.raw))["batch"]
    assert event["event"] == "compressed" and event["properties"]["n"] == 1


def test_zstd_when_a_zstd_is_at_hand(server):
    from posthog_otel._delivery.encoding import zstd_compressor

    if zstd_compressor() is None:
        pytest.skip("no zstd here: neither compression.zstd (Python 3.14) nor the zstandard package")
    zstandard = pytest.importorskip("zstandard")
    request = _sent_once(server, _v1_client(server, capture_compression="zstd"))
    assert request.headers["Content-Encoding"] == "zstd"
    (event,) = json.loads(zstandard.ZstdDecompressor().decompress(request.raw))["batch"]
    assert event["event"] == "compressed"


def test_zstd_without_one_is_refused_naming_the_extra(server, monkeypatch):
    from posthog_otel._delivery import encoding as _encoding

    monkeypatch.setattr(_encoding, "_zstd", None)
    with pytest.raises(ValueError, match=r"capture_compression.*posthog-otel\[zstd\]"):
        _v1_client(server, capture_compression="zstd")


def test_none_sends_plain_json_and_unset_follows_gzip(server):
    request = _sent_once(server, _v1_client(server, capture_compression="none", gzip=True))
    assert "Content-Encoding" not in request.headers and json.loads(request.raw)["batch"]
    server.reset()
    request = _sent_once(server, _v1_client(server, gzip=False))
    assert "Content-Encoding" not in request.headers
    server.reset()
    assert _sent_once(server, _v1_client(server)).headers["Content-Encoding"] == "gzip"  # our default


def test_posthogs_enum_is_understood_and_a_codec_we_lack_is_refused(server, posthog_sdk):
    from posthog.capture_compression import CaptureCompression

    client = _v1_client(server, capture_compression=CaptureCompression.DEFLATE)
    assert client.settings.capture_compression == "deflate"
    client.shutdown()
    with pytest.raises(ValueError, match="capture_compression='br': expected gzip, deflate, zstd or none"):
        _v1_client(server, capture_compression="br")


def test_batch_requests_follow_gzip_and_say_so(server, caplog):
    client = posthog.Posthog(API_KEY, host=server.url, capture_compression="deflate")
    assert "applies to Capture V1" in caplog.text
    client.capture("u", "batched")
    assert client.flush()
    client.shutdown()
    (request,) = server.requests
    assert request.path == "/batch/" and request.headers["Content-Encoding"] == "gzip"


def test_local_server_reads_deflate(tmp_path):
    store = Store(tmp_path / "v1.sqlite3")
    with LocalServer(store) as local:
        client = posthog.Posthog(API_KEY, host=local.url, capture_mode="v1", capture_compression="deflate")
        client.capture("u", "deflated")
        assert client.flush()
        client.shutdown()
    assert [e["event"] for e in store.events()] == ["deflated"]
    store.close()
