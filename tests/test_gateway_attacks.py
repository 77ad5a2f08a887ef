"""What a hostile client can cost the gateway: each attack from issue 18, on loopback, with a
valid request answered while it runs. Timeouts here are safety nets (the attacks used to
hold the gateway for tens of seconds or for ever), not measurements."""

from __future__ import annotations

import dataclasses
import gzip
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse  # noqa: E402

from posthog_otel._config import Settings, redact
from posthog_otel.gateway import GatewaySettings, create_app  # noqa: E402  (after the skips in gateway_support)
from posthog_otel.gateway._otlp import MAX_RECORD_BYTES  # noqa: E402
from posthog_otel.gateway._projects import Projects, Refused  # noqa: E402

from .gateway_support import KEY, OTHER_KEY, GatewayProcess, InProcess, protobuf_headers, record, request, set_record
from .support import Fault, child_env

VALID = request([set_record("u", {"plan": "pro"})]).SerializeToString()
SAFETY = 5  # seconds a valid request may take while an attack runs before the test calls it stopped


def start(server, gateway_settings=None, **delivery):
    delivery.setdefault("host", server.url)
    return InProcess(create_app(gateway_settings or GatewaySettings(), Settings.resolve(**delivery)))


def post(url, body=VALID, headers=None, timeout=SAFETY):
    return requests.post(url + "/v1/logs", data=body, headers=headers or protobuf_headers(), timeout=timeout)


def connect(url):
    host, port = url[len("http://") :].split(":")
    return socket.create_connection((host, int(port)), timeout=10)  # a safety net, not the test


def answer_of(sock):
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


# --- slow heads, idle connections, slow bodies (gunicorn, the command) ----------------------------


@pytest.fixture
def command(server, tmp_path):
    running = GatewayProcess(server.url, str(tmp_path), POSTHOG_OTEL_GATEWAY_THREADS="2",
                             POSTHOG_OTEL_GATEWAY_HEAD_TIMEOUT="30", POSTHOG_OTEL_GATEWAY_READ_TIMEOUT="0.5")  # fmt: skip
    yield running
    running.kill()


@pytest.mark.xdist_group("timing")
def test_slow_heads_and_idle_connections_hold_no_thread(command, server):
    """20 heads that stop half-way and 100 connections that send nothing: with 2 threads, a
    gthread worker gave each a thread (the slow ones for ever), and nothing else was served."""
    slow = [connect(command.url) for _ in range(20)]
    for sock in slow:
        sock.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n")
    idle = [connect(command.url) for _ in range(100)]
    try:
        assert post(command.url).status_code == 200
        assert server.wait_for_events(1)[0]["$set"] == {"plan": "pro"}
    finally:
        for sock in slow + idle:
            sock.close()


@pytest.mark.xdist_group("timing")
def test_a_head_that_stops_arriving_is_answered_408(server, tmp_path):
    running = GatewayProcess(server.url, str(tmp_path), POSTHOG_OTEL_GATEWAY_HEAD_TIMEOUT="0.5")
    try:
        with connect(running.url) as sock:
            sock.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            assert answer_of(sock).startswith(b"HTTP/1.1 408 ")
        assert post(running.url).status_code == 200
    finally:
        running.kill()


@pytest.mark.xdist_group("timing")
def test_a_body_that_stops_arriving_is_answered_408_as_documented(command):
    with connect(command.url) as sock:
        sock.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
                     b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: 1000\r\n\r\n" + VALID[:5])  # fmt: skip
        answer = answer_of(sock)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"did not arrive within 0.5 s" in answer
    assert post(command.url).status_code == 200


# --- bodies that cost more to decode than their size says ------------------------------------------


@pytest.fixture
def gateway(server):
    # The bounds on size and objects must decide here, not the decode deadline (1 s by default),
    # which a loaded machine can reach first: it has a test of its own.
    running = start(server, GatewaySettings(decode_timeout=120.0))
    yield running
    running.close()


def empty_records(count):
    """An OTLP request of ``count`` empty log records, on the wire: two bytes each."""
    records = b"\x12\x00" * count
    scope = b"\x12" + _varint(len(records)) + records
    return b"\x0a" + _varint(len(scope)) + scope


def _varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def test_a_gzip_of_millions_of_empty_records_is_refused_413_before_it_is_walked(gateway, server):
    """14 KiB of gzip, 15 MiB of empty records: 8.7 s and 568 MB of a worker before."""
    bomb = gzip.compress(empty_records(7_500_000), 9)
    assert len(bomb) < 64 * 1024
    reply = post(gateway.url, bomb, {**protobuf_headers(), "Content-Encoding": "gzip"})
    assert reply.status_code == 413 and b"POSTHOG_OTEL_GATEWAY_MAX_OBJECTS" in reply.content
    assert post(gateway.url).status_code == 200


def test_json_of_millions_of_empty_objects_is_refused_413_before_it_is_parsed(gateway):
    body = gzip.compress(b'{"resourceLogs": [' + b"{}," * 5_000_000 + b"{}]}", 9)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", "Authorization": "Bearer " + KEY}
    reply = post(gateway.url, body, headers)
    assert reply.status_code == 413 and "POSTHOG_OTEL_GATEWAY_MAX_OBJECTS" in reply.json()["message"]


def test_the_object_bound_and_the_decode_deadline_are_settings(server):
    running = start(server, GatewaySettings(max_objects=10))
    try:
        records = [set_record("u", {"k%d" % n: n}) for n in range(5)]
        assert post(running.url, request(records).SerializeToString()).status_code == 413
        assert post(running.url).status_code == 200
    finally:
        running.close()
    running = start(server, GatewaySettings(decode_timeout=1e-9))  # already past when it is first looked at
    try:
        reply = post(running.url, request([record("app.log")] * 200).SerializeToString())
        assert reply.status_code == 503 and "Retry-After" in reply.headers
    finally:
        running.close()


def test_a_record_over_a_mebibyte_is_refused_alone_without_being_parsed(gateway, server):
    big = set_record("u", {"blob": "x" * MAX_RECORD_BYTES})
    reply = post(gateway.url, request([big, set_record("u", {"small": 1})]).SerializeToString())
    answer = ExportLogsServiceResponse.FromString(reply.content)
    assert reply.status_code == 200 and answer.partial_success.rejected_log_records == 1
    assert "record_too_large" in answer.partial_success.error_message
    assert server.wait_for_events(1)[0]["$set"] == {"small": 1}


def test_many_gzip_members_are_refused_at_once(gateway):
    """1 MiB of 21-byte members took a second, 6 MiB 80 s (each member copied the rest)."""
    members = gzip.compress(b"", 9) * 50_000
    reply = post(gateway.url, members, {**protobuf_headers(), "Content-Encoding": "gzip"})
    assert reply.status_code == 400 and b"more than 1024 gzip members" in reply.content


@pytest.mark.xdist_group("timing")
def test_a_valid_request_is_answered_while_bombs_keep_coming(server, tmp_path):
    running = GatewayProcess(server.url, str(tmp_path))
    bomb = gzip.compress(empty_records(7_500_000), 9)
    stop = threading.Event()

    def attack():
        while not stop.is_set():
            try:
                post(running.url, bomb, {**protobuf_headers(), "Content-Encoding": "gzip"}, timeout=30)
            except requests.RequestException:
                pass

    attackers = [threading.Thread(target=attack, daemon=True) for _ in range(3)]
    try:
        for thread in attackers:
            thread.start()
        for _ in range(3):
            assert post(running.url).status_code == 200
    finally:
        stop.set()
        for thread in attackers:
            thread.join(30)
        running.kill()


# --- keys and project slots ----------------------------------------------------------------------


def test_the_default_key_never_serves_a_remote_request_without_its_own_key():
    projects = Projects(GatewaySettings(bind=("0.0.0.0", 4318), allowed_keys=frozenset({OTHER_KEY})),
                        Settings.resolve(api_key=KEY))  # fmt: skip
    assert projects.key_for(None, "127.0.0.1") == KEY
    for peer, forwarded in (("203.0.113.9", False), ("127.0.0.1", True), (None, False)):
        with pytest.raises(Refused) as refused:
            projects.key_for(None, peer, forwarded)
        assert refused.value.status == 401 and KEY not in str(refused.value)
    assert projects.key_for("Bearer " + KEY, "203.0.113.9") == KEY  # its own credential
    assert projects.key_for("Bearer " + OTHER_KEY, "203.0.113.9") == OTHER_KEY


def test_a_public_bind_with_only_posthog_api_key_refuses_to_start(tmp_path):
    done = subprocess.run([sys.executable, "-m", "posthog_otel.cli", "gateway", "--bind", "192.0.2.1:0"],
                          env=child_env(POSTHOG_OTEL_SPOOL_DIR=str(tmp_path), POSTHOG_API_KEY=KEY),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert "not a loopback address" in done.stderr and "POSTHOG_OTEL_GATEWAY_KEYS" in done.stderr
    assert KEY not in done.stderr


def made_up(n):
    return "phc_madeup%030d" % n


def test_made_up_keys_cannot_keep_a_real_one_out(server):
    """64 made-up keys from this machine used to take every slot: a real key got 403 until a
    restart. Keys PostHog has not accepted give way, least recently used first."""
    server.otherwise = lambda: Fault(status=401)  # PostHog refuses them
    running = start(server, GatewaySettings(max_projects=3))
    try:
        for n in range(8):
            assert post(running.url, headers=protobuf_headers(made_up(n))).status_code == 200
        assert len(running.app.projects.snapshot()) == 3
        server.otherwise = lambda: Fault()
        assert post(running.url, headers=protobuf_headers(OTHER_KEY)).status_code == 200
        deadline = time.monotonic() + 10
        while not any(r.payload["api_key"] == OTHER_KEY for r in server.accepted):
            assert time.monotonic() < deadline, "the real key's event never reached PostHog"
            time.sleep(0.05)
    finally:
        running.close()


def test_proven_keys_keep_their_slots_and_a_full_gateway_answers_503(server):
    projects = Projects(GatewaySettings(max_projects=2, retry_after=7), Settings.resolve(host=server.url))
    try:
        first, second = projects.project(KEY), projects.project(OTHER_KEY)
        first._proven = True  # PostHog accepted a batch for it
        with pytest.raises(Refused) as refused:
            projects.project(made_up(1))  # the other slot is in use by a request
        assert (refused.value.status, refused.value.retry_after) == (503, 7)
        projects.release(second)
        assert projects.project(made_up(1)) is not second  # the unproven, unused one gave way
        assert projects.project(KEY) is first
    finally:
        projects.close(1.0)


def test_projects_without_requests_age_out(server):
    projects = Projects(GatewaySettings(project_idle=0.01), Settings.resolve(host=server.url))
    try:
        projects.release(projects.project(OTHER_KEY))
        time.sleep(0.05)
        projects._next_sweep = 0.0  # the sweep runs at most once a second; this one now
        projects.release(projects.project(KEY))
        assert [key for key, _ in projects.snapshot()] == [redact(KEY)]
    finally:
        projects.close(1.0)


def _event(n):
    from posthog_otel._delivery.dispatch import MappedEvents

    return MappedEvents([{"event": "$set", "distinct_id": "person", "uuid": "0190f4c1-0000-7000-8000-%012d" % n,
                          "timestamp": "2024-01-01T00:00:00+00:00", "properties": {}, "$set": {"n": n}}])  # fmt: skip


def _age_out(projects, key):
    """Take ``key``'s project out of service as the gateway does when it has been idle."""
    time.sleep(0.05)  # project_idle is 0.01 s
    projects._next_sweep = 0.0  # the sweep runs at most once a second; this one now
    projects.release(projects.project(KEY))


def test_an_aged_out_project_leaves_no_empty_spool_directory(server, tmp_path):
    """Made-up keys, each used once, each left a directory behind: one is removed when its
    project closes with nothing waiting in it."""
    from posthog_otel._delivery.spool import spool_directory

    delivery = Settings.resolve(host=server.url, spool_dir=str(tmp_path))
    projects = Projects(GatewaySettings(project_idle=0.01), delivery)
    try:
        project = projects.project(OTHER_KEY)
        project.dispatcher.hand_off(_event(1))
        projects.release(project)
        server.wait_for_events(1, timeout=30)
        directory = spool_directory(dataclasses.replace(delivery, api_key=OTHER_KEY))
        assert directory.is_dir()
        _age_out(projects, OTHER_KEY)
        deadline = time.monotonic() + SAFETY
        while directory.exists():
            assert time.monotonic() < deadline, "the closed project's empty spool directory stayed"
            time.sleep(0.05)
    finally:
        projects.close(1.0)


@pytest.mark.slow
def test_a_key_back_while_its_project_closes_waits_for_it(server, tmp_path):
    """Two dispatchers on one spool directory in one process would each take the other's claims
    for orphans: the key is answered 503 until its old project has closed, then opens again and
    sends what the old one spooled, once."""
    server.otherwise = lambda: Fault(hold=True)  # the old project's close takes its stall limit
    projects = Projects(GatewaySettings(project_idle=0.01, retry_after=3),
                        Settings.resolve(host=server.url, spool_dir=str(tmp_path)))  # fmt: skip
    try:
        project = projects.project(OTHER_KEY)
        project.dispatcher.hand_off(_event(1))
        projects.release(project)
        _age_out(projects, OTHER_KEY)
        with pytest.raises(Refused) as refused:
            projects.project(OTHER_KEY)
        assert (refused.value.status, refused.value.retry_after) == (503, 3)
        server.otherwise = lambda: Fault()
        deadline = time.monotonic() + SAFETY
        while True:
            try:
                reopened = projects.project(OTHER_KEY)
                break
            except Refused:
                assert time.monotonic() < deadline, "the key never opened again"
                time.sleep(0.05)
        projects.release(reopened)
        assert [e["$set"]["n"] for e in server.wait_for_events(1, timeout=30)] == [1]
    finally:
        projects.close(1.0)
    assert [e["$set"]["n"] for e in server.events] == [1]


# --- the spool's cap ----------------------------------------------------------------------------------


@pytest.mark.xdist_group("timing")
def test_the_spool_stays_under_its_cap_while_posthog_is_down(server):
    """Memory (16 MiB) was not counted against a smaller spool cap, and requests taken within
    one look at the figures were not either: a gateway's spool reached twice its cap."""
    from posthog_otel import _log
    from posthog_otel._delivery.spool import spool_directory

    server.otherwise = lambda: Fault(status=503)
    cap = 100_000
    running = start(server, spool_after=0.05, spool_max_bytes=cap)
    body = request([set_record("person", {"pad": "p" * 10_000})]).SerializeToString()
    refused = threading.Event()

    def send():
        while not refused.is_set():
            if post(running.url, body).status_code == 503:
                refused.set()

    senders = [threading.Thread(target=send) for _ in range(4)]
    try:
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(30)
        time.sleep(0.5)  # what waited in memory reaches the spool
        directory = spool_directory(Settings.resolve(api_key=KEY, host=server.url))
        on_disk = sum(path.stat().st_size for path in directory.iterdir() if path.name.endswith(("json", "claimed")))
        assert on_disk <= cap and _log.drop_counts().get("spool_full_or_expired", 0) == 0
    finally:
        running.close()
