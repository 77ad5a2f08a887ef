"""``posthog-otel gateway`` (gunicorn, in a child process) fed by real OTLP clients that know
nothing of posthog_otel: the standard Python OTLP/HTTP exporter in another process, a Node.js
service on the OpenTelemetry JS SDK, a raw OTLP/JSON request. What reaches PostHog must equal
what posthog_otel sends directly for the same operations, the library's own fields aside.
Then SIGTERM, several workers, and several gateways behind routing by person."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from opentelemetry.sdk._logs import LoggerProvider

import posthog_otel

from .gateway_support import KEY, GatewayProcess
from .node_support import NODE, node_modules
from .support import CaptureServer, Fault, child_env

APPS = Path(__file__).parent / "apps"
SCHEMA_RECORDS = APPS / "schema_records.json"
#: What only one road adds: the library's name and version, and the sending process's own system.
LIBRARY_FIELDS = {"$lib", "$lib_version", "$python_runtime", "$python_version", "$os", "$os_version", "$os_distro"}


def direct_events(tmp_path) -> list:
    """The operations of schema_records.json, through posthog_otel's own API and exporter."""
    posthog = CaptureServer()
    provider = LoggerProvider(shutdown_on_exit=False)
    try:
        posthog_otel.configure(api_key=KEY, host=posthog.url, logger_provider=provider, schedule_delay_millis=50)
        at = lambda seconds, micro=0: dt.datetime.fromtimestamp(seconds, dt.timezone.utc).replace(microsecond=micro)  # noqa: E731
        uuid = "0190f3a4-0000-7000-8000-00000000000%d"
        posthog_otel.set("user_1", {"plan": "pro", "seats": 3, "beta": True, "score": 9.5, "tags": ["a", "b"]},
                         timestamp=at(1705314600, 123456), uuid=uuid % 1)  # fmt: skip
        posthog_otel.set_once(
            "user_1", {"first_seen": "2024-01-15", "source": "ads"}, timestamp=at(1705314601), uuid=uuid % 2
        )
        posthog_otel.group_identify("company", "acme", {"name": "Acme", "employees": 40}, distinct_id="user_1",
                                    timestamp=at(1705314602), uuid=uuid % 3)  # fmt: skip
        posthog_otel.alias("anon_1", "user_1", timestamp=at(1705314603), uuid=uuid % 4)
        posthog_otel.capture("user_1", "subscription_upgraded", {"plan": "pro", "amount": 12.5, "annual": False},
                             groups={"company": "acme"}, timestamp=at(1705314604, 500000), uuid=uuid % 5)  # fmt: skip
        provider.force_flush()
        return posthog.wait_for_events(5)
    finally:
        provider.shutdown()
        posthog.close()


def without_library_fields(events: list) -> list:
    return [{**e, "properties": {k: v for k, v in e["properties"].items() if k not in LIBRARY_FIELDS}} for e in events]


@pytest.fixture
def gateway(server, tmp_path):
    running = GatewayProcess(server.url, str(tmp_path / "spool"))
    yield running
    running.stop()


def client_env(gateway, key=KEY):
    return child_env(
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=gateway.url + "/v1/logs",
        OTEL_EXPORTER_OTLP_LOGS_HEADERS="Authorization=Bearer%20" + key,
    )


def test_python_otlp_exporter_sends_every_operation(gateway, server, tmp_path):
    subprocess.run([sys.executable, str(APPS / "otlp_client.py"), str(SCHEMA_RECORDS)], env=client_env(gateway),
                   check=True, timeout=60)  # fmt: skip
    received = server.wait_for_events(5)
    assert [e["properties"]["$lib"] for e in received] == ["posthog-otel-gateway"] * 5
    assert without_library_fields(received) == without_library_fields(direct_events(tmp_path))


def test_node_sdk_sends_every_operation(gateway, server, tmp_path):
    node_modules()
    subprocess.run(["node", str(NODE / "client.mjs"), str(SCHEMA_RECORDS)], env=client_env(gateway), check=True,
                   timeout=60)  # fmt: skip
    received = server.wait_for_events(5)
    assert without_library_fields(received) == without_library_fields(direct_events(tmp_path))


def test_raw_otlp_json_chunked_and_gzipped(gateway, server):
    document = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"eventName": "posthog.capture", "timeUnixNano": 1705314600000000000,
         "attributes": [{"key": "posthog.distinct_id", "value": {"stringValue": "raw_user"}},
                        {"key": "posthog.event", "value": {"stringValue": "raw_event"}}],
         "body": {"kvlistValue": {"values": [{"key": "ok", "value": {"boolValue": True}}]}}},
        {"severityText": "INFO", "body": {"stringValue": "an application log"}},
    ]}]}]}  # fmt: skip
    body = gzip.compress(json.dumps(document).encode())
    chunks = (body[i : i + 7] for i in range(0, len(body), 7))  # a generator: chunked, no Content-Length
    reply = requests.post(gateway.url + "/v1/logs", data=chunks, timeout=10, headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip", "Authorization": "Bearer " + KEY})  # fmt: skip
    assert reply.status_code == 200 and reply.json() == {}
    (event,) = server.wait_for_events(1)
    assert (event["event"], event["distinct_id"], event["properties"]["ok"]) == ("raw_event", "raw_user", True)
    assert event["timestamp"] == "2024-01-15T10:30:00+00:00"


def test_the_command_refuses_to_be_an_open_relay(tmp_path):
    done = subprocess.run([sys.executable, "-m", "posthog_otel.cli", "gateway", "--bind", "192.0.2.1:0"],
                          env=child_env(POSTHOG_OTEL_SPOOL_DIR=str(tmp_path)), capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert "not a loopback address" in done.stderr and "POSTHOG_OTEL_GATEWAY_KEYS" in done.stderr


def test_the_command_says_which_keys_it_takes(tmp_path, server):
    running = GatewayProcess(server.url, str(tmp_path), POSTHOG_OTEL_GATEWAY_KEYS=KEY)
    try:
        assert "keys on its allow-list only: phc_...op" in "".join(running.banner)
        assert KEY not in "".join(running.banner)
    finally:
        running.stop()


@pytest.mark.xdist_group("timing")
def test_sigterm_spools_what_posthog_did_not_take_and_the_next_start_sends_it(server, tmp_path):
    spool = str(tmp_path / "spool")
    server.otherwise = lambda: Fault(status=503)
    first = GatewayProcess(server.url, spool, POSTHOG_API_KEY=KEY)
    env = child_env(OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=first.url + "/v1/logs")  # no key: the gateway's own
    subprocess.run([sys.executable, str(APPS / "otlp_client.py"), "--people", "3", "--count", "30"], env=env,
                   check=True, timeout=60)  # fmt: skip
    assert first.stop(timeout=30) == 0, first.stderr
    assert server.events == []
    assert any(Path(spool).rglob("*.json")), "nothing was spooled"
    server.otherwise = lambda: Fault()
    second = GatewayProcess(server.url, spool, POSTHOG_API_KEY=KEY)
    try:
        events = server.wait_for_events(30, timeout=30)
        assert sorted(e["$set"]["n"] for e in events) == list(range(30))
        for person in range(3):
            mine = [e["$set"]["n"] for e in events if e["distinct_id"] == "person_%d" % person]
            assert mine == sorted(mine)
    finally:
        assert second.stop() == 0


@pytest.mark.slow
def test_several_workers_deliver_everything_once(server, tmp_path):
    running = GatewayProcess(server.url, str(tmp_path / "spool"), workers=3)
    try:
        clients = [
            subprocess.Popen(
                [sys.executable, str(APPS / "otlp_client.py"), "--people", "20", "--count", "400"],
                env=client_env(running),
            )  # fmt: skip
            for _ in range(3)
        ]
        assert [client.wait(120) for client in clients] == [0, 0, 0]
        events = server.wait_for_events(1200, timeout=60)
        assert len(events) == 1200 and len({e["uuid"] for e in events}) == 1200
        pids = {requests.get(running.url + "/health", timeout=5).json()["pid"] for _ in range(30)}
        assert len(pids) >= 1
    finally:
        assert running.stop() == 0, running.stderr


@pytest.mark.slow
def test_several_gateways_routed_by_person_keep_each_persons_order(server, tmp_path):
    """The scale-out topology of docs/gateway.md without a Collector binary: the client plays
    the loadbalancing exporter (one OTLP exporter per gateway, a person always to the same
    one); each gateway delivers to its own path of the same PostHog, so the test sees which
    gateway carried whom."""
    gateways = [GatewayProcess(server.url + "/gw%d" % n, str(tmp_path / ("spool%d" % n))) for n in range(2)]
    try:
        route = ",".join(g.url + "/v1/logs" for g in gateways)
        env = child_env(OTEL_EXPORTER_OTLP_LOGS_HEADERS="Authorization=Bearer%20" + KEY)
        subprocess.run([sys.executable, str(APPS / "otlp_client.py"), "--people", "16", "--count", "800", "--route", route],
                       env=env, check=True, timeout=120)  # fmt: skip
        server.wait_for_events(800, timeout=60)
        carried = {}
        for recorded in server.accepted:
            for event in recorded.payload["batch"]:
                carried.setdefault(event["distinct_id"], []).append((recorded.path.split("/")[1], event["$set"]["n"]))
        assert sum(len(v) for v in carried.values()) == 800
        for person, seen in carried.items():
            assert len({path for path, _ in seen}) == 1, "%s went through both gateways" % person
            numbers = [n for _, n in seen]
            assert numbers == sorted(numbers), "%s's updates arrived out of order" % person
        assert len({path for seen in carried.values() for path, _ in seen}) == 2  # both gateways carried someone
    finally:
        for running in gateways:
            assert running.stop() == 0, running.stderr
