"""The gateway's answers, access rules, backpressure and delivery, through real HTTP on
127.0.0.1 (the WSGI app behind wsgiref, in this process) to a loopback PostHog."""

from __future__ import annotations

import gzip
import json
import time
import zlib
from pathlib import Path

import pytest
import requests
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse  # noqa: E402

from posthog_otel import _log
from posthog_otel._config import Settings
from posthog_otel._delivery.spool import spool_directory
from posthog_otel.gateway import GatewaySettings, create_app  # noqa: E402  (after the skips in gateway_support)
from posthog_otel.gateway._projects import Projects, Refused  # noqa: E402

from .gateway_support import (
    KEY,
    OTHER_KEY,
    InProcess,
    protobuf_headers,
    record,
    request,
    set_record,
)
from .support import Fault


def start(server, gateway_settings=None, **delivery):
    delivery.setdefault("host", server.url)
    app = create_app(gateway_settings or GatewaySettings(), Settings.resolve(**delivery))
    return InProcess(app)


@pytest.fixture
def gateway(server):
    running = start(server)
    yield running
    running.close()


def post(gateway, body, headers=None, path="/v1/logs"):
    return requests.post(gateway.url + path, data=body, headers=headers or protobuf_headers(), timeout=10)


def test_protobuf_operations_become_posthog_events(gateway, server):
    records = [
        set_record("user_1", {"plan": "pro"}, time_unix_nano=1_700_000_000_000_000_000),
        record(
            "posthog.capture",
            {"posthog.distinct_id": "user_1", "posthog.event": "paid", "posthog.groups.company": "acme"},
            {"amount": 12.5},
        ),  # fmt: skip
        record(body="an application log line, not PostHog's"),
    ]
    reply = post(gateway, request(records, {"service.name": "billing"}).SerializeToString())
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/x-protobuf"
    assert not ExportLogsServiceResponse.FromString(reply.content).HasField("partial_success")
    first, second = server.wait_for_events(2)
    assert (first["event"], first["distinct_id"], first["$set"]) == ("$set", "user_1", {"plan": "pro"})
    assert first["timestamp"] == "2023-11-14T22:13:20+00:00"
    assert first["properties"]["$lib"] == "posthog-otel-gateway"
    assert second["event"] == "paid" and second["properties"]["$groups"] == {"company": "acme"}
    assert second["properties"]["amount"] == 12.5
    assert server.accepted[0].payload["api_key"] == KEY


def test_refused_records_are_counted_in_partial_success(gateway, server):
    records = [set_record("user_1", {"a": 1}), record("posthog.set", {}, {"a": 1}), record("posthog.alias", {})]
    reply = post(gateway, request(records).SerializeToString())
    answer = ExportLogsServiceResponse.FromString(reply.content)
    assert reply.status_code == 200 and answer.partial_success.rejected_log_records == 2
    assert "no_distinct_id x2" in answer.partial_success.error_message
    assert len(server.wait_for_events(1)) == 1
    assert _log.drop_counts()["no_distinct_id"] == 2


def test_json_body_is_read_and_answered_in_json(gateway, server):
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"eventName": "posthog.set_once", "timeUnixNano": "1700000000000000000",
         "attributes": [{"key": "posthog.distinct_id", "value": {"stringValue": "u9"}}],
         "body": {"kvlistValue": {"values": [{"key": "first_seen", "value": {"intValue": "3"}}]}}},
        {"eventName": "posthog.set", "body": {"kvlistValue": {"values": []}}},
    ]}]}]}  # fmt: skip
    reply = post(gateway, json.dumps(body), {"Content-Type": "application/json", "Authorization": "Bearer " + KEY})
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/json"
    assert reply.json()["partialSuccess"]["rejectedLogRecords"] == "1"
    (event,) = server.wait_for_events(1)
    assert event["event"] == "$set_once" and event["$set_once"] == {"first_seen": 3}


@pytest.mark.parametrize("encode, header", [(gzip.compress, "gzip"), (zlib.compress, "deflate")])
def test_compressed_bodies(gateway, server, encode, header):
    body = encode(request([set_record("u", {"x": 1})]).SerializeToString())
    reply = post(gateway, body, {**protobuf_headers(), "Content-Encoding": header})
    assert reply.status_code == 200
    assert server.wait_for_events(1)[0]["$set"] == {"x": 1}


@pytest.mark.parametrize(
    "body, headers, status",
    [
        (b"\xff\xff\xff not protobuf", protobuf_headers(), 400),
        (b"{not json", {"Content-Type": "application/json", "Authorization": "Bearer " + KEY}, 400),
        (b'{"resourceLogs": 3}', {"Content-Type": "application/json", "Authorization": "Bearer " + KEY}, 400),
        (b"\x1f\x8b broken gzip", {**protobuf_headers(), "Content-Encoding": "gzip"}, 400),
        (b"x", {**protobuf_headers(), "Content-Encoding": "br"}, 415),
        (b"x", {"Content-Type": "text/plain", "Authorization": "Bearer " + KEY}, 415),
    ],
)
def test_malformed_requests_are_refused_with_a_reason(gateway, server, body, headers, status):
    reply = post(gateway, body, headers)
    assert reply.status_code == status
    assert reply.content  # a google.rpc.Status saying why
    assert server.requests == []


def test_oversized_bodies_are_413(server):
    running = start(server, GatewaySettings(max_body_bytes=1000, max_inflated_bytes=5000))
    try:
        big = request([set_record("u", {"blob": "x" * 2000})]).SerializeToString()
        assert post(running, big).status_code == 413
        bomb = gzip.compress(request([set_record("u", {"blob": "x" * 20000})]).SerializeToString())
        assert len(bomb) < 1000
        assert post(running, bomb, {**protobuf_headers(), "Content-Encoding": "gzip"}).status_code == 413
    finally:
        running.close()


def test_wrong_method_and_path(gateway):
    assert requests.get(gateway.url + "/v1/logs", timeout=5).status_code == 405
    assert post(gateway, b"", path="/v1/traces").status_code == 404


# --- keys and access ---------------------------------------------------------------------------


def test_each_key_is_its_own_project(gateway, server):
    assert post(gateway, request([set_record("a", {"k": 1})]).SerializeToString(), protobuf_headers(KEY)).ok
    assert post(gateway, request([set_record("b", {"k": 2})]).SerializeToString(), protobuf_headers(OTHER_KEY)).ok
    server.wait_for_events(2)
    keys = {r.payload["api_key"]: [e["distinct_id"] for e in r.payload["batch"]] for r in server.accepted}
    assert keys == {KEY: ["a"], OTHER_KEY: ["b"]}
    spools = {spool_directory(Settings.resolve(api_key=k, host=server.url)) for k in (KEY, OTHER_KEY)}
    assert len(spools) == 2


@pytest.mark.parametrize(
    "authorization, status",
    [(None, 401), ("Basic dXNlcjpwYXNz", 401), ("Bearer x", 401), ("Bearer phx_personal0123456789abcdef", 401)],
)
def test_requests_without_a_usable_key_are_refused(gateway, server, authorization, status):
    headers = {"Content-Type": "application/x-protobuf", **({"Authorization": authorization} if authorization else {})}
    reply = post(gateway, request([set_record("u", {"x": 1})]).SerializeToString(), headers)
    assert reply.status_code == status
    assert "phx_personal" not in reply.text


def test_the_gateway_key_serves_requests_without_one(server):
    running = start(server, api_key=KEY)
    try:
        assert post(running, request([set_record("u", {"x": 1})]).SerializeToString(), protobuf_headers(None)).ok
        server.wait_for_events(1)
        assert server.accepted[0].payload["api_key"] == KEY
    finally:
        running.close()


def test_an_allow_list_refuses_other_keys(server):
    running = start(server, GatewaySettings(allowed_keys=frozenset({KEY})))
    try:
        body = request([set_record("u", {"x": 1})]).SerializeToString()
        refused = post(running, body, protobuf_headers(OTHER_KEY))
        assert refused.status_code == 403 and OTHER_KEY not in refused.text
        assert post(running, body, protobuf_headers(KEY)).ok
        assert [r.payload["api_key"] for r in server.accepted] in ([], [KEY])
    finally:
        running.close()


def test_without_an_allow_list_keys_are_taken_from_this_machine_only():
    """Real sockets here all come from 127.0.0.1, so the peer address is given directly."""
    projects = Projects(GatewaySettings(bind=("0.0.0.0", 4318)), Settings.resolve())
    assert projects.key_for("Bearer " + KEY, "127.0.0.1") == KEY
    assert projects.key_for("Bearer " + KEY, "::1") == KEY
    with pytest.raises(Refused) as refused:
        projects.key_for("Bearer " + KEY, "203.0.113.9")
    assert refused.value.status == 403
    listed = Projects(GatewaySettings(allowed_keys=frozenset({KEY})), Settings.resolve())
    assert listed.key_for("Bearer " + KEY, "203.0.113.9") == KEY


@pytest.mark.parametrize("header", ["Forwarded", "X-Forwarded-For", "X-Real-IP"])
def test_without_an_allow_list_a_request_a_local_proxy_relays_is_refused(server, header):
    running = start(server)
    try:
        body = request([set_record("u", {"x": 1})]).SerializeToString()
        relayed = post(running, body, {**protobuf_headers(OTHER_KEY), header: "203.0.113.9"})
        assert relayed.status_code == 403 and "proxy" in relayed.text and OTHER_KEY not in relayed.text
        assert post(running, body, protobuf_headers(OTHER_KEY)).ok  # the same key, sent from this machine
    finally:
        running.close()


# --- backpressure, order, health, stop ------------------------------------------------------------


@pytest.mark.xdist_group("timing")
def test_backpressure_while_posthog_is_down(server):
    """PostHog answers 503: the spool fills to its high-water mark, then the gateway answers
    503 with Retry-After; once PostHog is back, everything taken is delivered, in order."""
    server.otherwise = lambda: Fault(status=503)
    running = start(server, GatewaySettings(retry_after=2), spool_after=0.05, spool_max_bytes=20_000)
    try:
        sent = 0
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "the gateway never pushed back"
            reply = post(running, request([set_record("person", {"n": sent, "pad": "p" * 500})]).SerializeToString())
            if reply.status_code == 503:
                break
            assert reply.status_code == 200
            sent += 1
        assert reply.headers["Retry-After"] == "2" and sent > 5
        server.otherwise = lambda: Fault()
        events = server.wait_for_events(sent, timeout=30)
        assert [e["$set"]["n"] for e in events] == list(range(sent))
        deadline = time.monotonic() + 15
        while post(running, request([set_record("person", {"n": sent})]).SerializeToString()).status_code != 200:
            assert time.monotonic() < deadline, "the gateway kept pushing back after PostHog recovered"
            time.sleep(0.1)
    finally:
        running.close()


def test_one_persons_records_leave_in_arrival_order(gateway, server):
    for n in range(40):
        records = [set_record("same_person", {"n": 2 * n}), set_record("same_person", {"n": 2 * n + 1})]
        assert post(gateway, request(records).SerializeToString()).ok
    events = server.wait_for_events(80)
    assert [e["$set"]["n"] for e in events] == list(range(80))


def test_health_reports_what_the_worker_did(gateway, server):
    post(
        gateway,
        request(
            [set_record("u", {"x": 1}), record("posthog.set", {}, {"x": 1}), record(body="log")]
        ).SerializeToString(),
    )
    server.wait_for_events(1)
    health = requests.get(gateway.url + "/health", timeout=5)
    assert health.status_code == 200
    document = health.json()
    assert document["status"] == "ok"
    assert document["records"] == {"accepted": 1, "rejected": 1, "ignored": 1}
    assert document["requests"] == {"200": 1}
    (project,) = document["projects"]
    assert KEY not in health.text and project["key"].startswith("phc_")


def test_close_delivers_what_it_holds_then_refuses(server):
    server.fail_next(Fault(delay=0.3))
    running = start(server)
    for n in range(5):
        assert post(running, request([set_record("u", {"n": n})]).SerializeToString()).ok
    running.app.close(5.0)
    assert [e["$set"]["n"] for e in server.events] == list(range(5))
    reply = post(running, request([set_record("u", {"n": 9})]).SerializeToString())
    assert reply.status_code == 503 and "Retry-After" in reply.headers
    assert requests.get(running.url + "/health", timeout=5).json()["status"] == "stopping"
    running.close()


def test_the_meter_reports_gateway_records(server):
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(provider)  # the global one: the SDK sets it once per process
    running = start(server)
    try:
        post(running, request([set_record("u", {"x": 1}), record(body="log")]).SerializeToString())
        server.wait_for_events(1)
        data = reader.get_metrics_data()
        points = {
            (metric.name, tuple(sorted(point.attributes.items()))): point.value
            for rm in data.resource_metrics for sm in rm.scope_metrics for metric in sm.metrics
            for point in metric.data.data_points
        }  # fmt: skip
        if not any(name.startswith("posthog_otel.gateway") for name, _ in points):
            pytest.skip("another test set this process's MeterProvider first")
        assert points[("posthog_otel.gateway.records", (("outcome", "accepted"),))] >= 1
        assert points[("posthog_otel.gateway.records", (("outcome", "ignored"),))] >= 1
    finally:
        running.close()


# --- settings ----------------------------------------------------------------------------------


def test_settings_name_what_is_wrong_and_never_show_keys():
    with pytest.raises(ValueError, match="POSTHOG_OTEL_GATEWAY_BIND"):
        GatewaySettings.resolve({"POSTHOG_OTEL_GATEWAY_BIND": "127.0.0.1:99999"})
    with pytest.raises(ValueError, match="--allowed-keys") as error:
        GatewaySettings.resolve({}, allowed_keys=["phx_personalkey0123456789"])
    assert "phx_personalkey0123456789" not in str(error.value)
    settings = GatewaySettings.resolve({"POSTHOG_OTEL_GATEWAY_KEYS": "%s, %s" % (KEY, OTHER_KEY)})
    assert settings.allowed_keys == {KEY, OTHER_KEY}
    assert KEY not in repr(settings) and OTHER_KEY not in repr(settings)
    assert GatewaySettings.resolve({"POSTHOG_OTEL_GATEWAY_BIND": "[::1]:4000"}).bind == ("::1", 4000)
    assert GatewaySettings.resolve({}).loopback
    assert not GatewaySettings.resolve({"POSTHOG_OTEL_GATEWAY_BIND": "0.0.0.0"}).loopback


def test_docs_list_every_gateway_setting():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "gateway.md").read_text()
    for _name, (variable,), _default, _ in GatewaySettings.table():
        assert "`%s`" % variable in docs, "docs/gateway.md does not list %s" % variable
