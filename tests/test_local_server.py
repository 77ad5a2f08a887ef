"""The local PostHog: validation like capture's, person and group rules, durability."""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import time
import tracemalloc
import uuid
import zlib

import pytest
import requests

from posthog_otel._local.server import LocalServer
from posthog_otel._local.serving import HTTPError, Limits, inflate
from posthog_otel._local.store import Store

KEY = "phc_local_test_key_0123456789"


@pytest.fixture
def store(tmp_path):
    db = Store(tmp_path / "local.sqlite3")
    yield db
    db.close()


@pytest.fixture
def local(store):
    with LocalServer(store) as server:
        yield server


def post(server, batch, api_key=KEY, **extra):
    body = {"api_key": api_key, "batch": batch, **extra}
    return requests.post(server.url + "/batch/", json=body, timeout=5)


def ev(event, distinct_id, **fields):
    return {"event": event, "distinct_id": distinct_id, "uuid": str(uuid.uuid4()), **fields}


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,message",
    [
        ({"batch": [ev("e", "u")]}, "api_key is missing"),
        ({"api_key": "", "batch": [ev("e", "u")]}, "api_key is missing"),
        ({"api_key": KEY}, "batch is missing"),
        ({"api_key": KEY, "batch": []}, "batch is empty"),
        ({"api_key": KEY, "batch": ["text"]}, "batch[0]: an event must be a JSON object"),
        ({"api_key": KEY, "batch": [{"distinct_id": "u"}]}, "batch[0]: event name is missing"),
        ({"api_key": KEY, "batch": [{"event": "", "distinct_id": "u"}]}, "batch[0]: event name is missing"),
        ({"api_key": KEY, "batch": [ev("ok", "u"), {"event": "e"}]}, "batch[1]: distinct_id is missing"),
        ({"api_key": KEY, "batch": [{"event": "e", "distinct_id": "  "}]}, "batch[0]: distinct_id is empty"),
        ({"api_key": KEY, "batch": [{"event": "e", "distinct_id": {"a": 1}}]}, "distinct_id must be a string"),
        ({"api_key": KEY, "batch": [{"event": "e", "distinct_id": True}]}, "distinct_id must be a string"),
        ({"api_key": KEY, "batch": [{"event": "e", "distinct_id": "u", "uuid": "nope"}]}, "is not a valid uuid"),
        ({"api_key": KEY, "batch": [{"event": "e", "distinct_id": "u", "timestamp": "yesterday"}]}, "ISO-8601"),
        ({"api_key": KEY, "batch": [{"event": "e", "distinct_id": "u", "properties": [1]}]}, "properties must be"),
        ({"api_key": KEY, "batch": [{"event": "e", "distinct_id": "u", "$set": "x"}]}, "$set must be"),
        ({"api_key": KEY, "batch": [ev("e", "u")], "sent_at": "soon"}, "sent_at"),
    ],
)
def test_invalid_requests_are_refused_whole_with_a_reason(local, store, body, message):
    response = requests.post(local.url + "/batch/", json=body, timeout=5)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert store.events() == []


def test_not_json_and_bad_gzip_are_refused(local):
    assert "not valid JSON" in requests.post(local.url + "/batch/", data=b"{nope", timeout=5).json()["error"]
    response = requests.post(
        local.url + "/batch/", data=b"\x1f\x8bnot gzip", headers={"Content-Encoding": "gzip"}, timeout=5
    )
    assert response.status_code == 400 and "not valid gzip" in response.json()["error"]


def test_unknown_endpoint_is_404(local):
    assert requests.post(local.url + "/capture/", json={}, timeout=5).status_code == 404


def test_gzip_bodies_are_accepted(local, store):
    body = gzip.compress(json.dumps({"api_key": KEY, "batch": [ev("e", "u")]}).encode())
    response = requests.post(local.url + "/batch/", data=body, headers={"Content-Encoding": "gzip"}, timeout=5)
    assert response.status_code == 200 and response.json()["status"] == 1
    assert [e["event"] for e in store.events()] == ["e"]


# --- person rules ----------------------------------------------------------------------------


def test_set_overwrites_and_set_once_fills_only_missing_keys(local, store):
    post(local, [ev("$set", "u", **{"$set": {"plan": "free", "name": "A"}})])
    post(local, [ev("$set_once", "u", **{"$set_once": {"plan": "pro", "first": "2024"}})])
    assert store.person("u")["properties"] == {"plan": "free", "name": "A", "first": "2024"}
    post(local, [ev("$set", "u", **{"$set": {"plan": "premium"}})])
    assert store.person("u")["properties"] == {"plan": "premium", "name": "A", "first": "2024"}


def test_set_and_unset_carried_by_ordinary_events_apply(local, store):
    post(local, [ev("signup", "u", properties={"$set": {"email": "a@b.c", "tmp": 1}, "$set_once": {"src": "ad"}})])
    post(local, [ev("cleanup", "u", properties={"$unset": ["tmp"]})])
    assert store.person("u")["properties"] == {"email": "a@b.c", "src": "ad"}


def test_alias_when_neither_id_has_a_person_creates_one_identified_person(local, store):
    post(local, [ev("$create_alias", "anon", properties={"distinct_id": "anon", "alias": "user"})])
    person = store.person("user")
    assert person["distinct_ids"] == ["anon", "user"] and person["is_identified"]
    assert len(store.persons()) == 1


def test_alias_adds_the_missing_id_to_the_existing_person(local, store):
    post(local, [ev("$set", "user", **{"$set": {"plan": "pro"}})])
    post(local, [ev("$create_alias", "anon", properties={"alias": "user"})])
    assert store.person("anon")["distinct_ids"] == ["anon", "user"]
    assert store.person("anon")["properties"] == {"plan": "pro"}


def test_alias_merges_two_persons_and_the_event_distinct_ids_person_wins(local, store):
    post(local, [ev("$set", "anon", **{"$set": {"plan": "free", "referrer": "google"}})])
    post(local, [ev("$set", "user", **{"$set": {"plan": "pro", "email": "a@b.c"}})])
    # PostHog's wire shape: distinct_id = previous (anon), alias = the new id (user);
    # the merge goes into the person of the event's distinct_id.
    post(local, [ev("$create_alias", "anon", properties={"distinct_id": "anon", "alias": "user"})])
    (person,) = store.persons()
    assert person["distinct_ids"] == ["anon", "user"]
    assert person["properties"] == {"plan": "free", "referrer": "google", "email": "a@b.c"}
    assert person["events"] == 3


def test_merging_an_already_identified_person_is_refused(local, store):
    post(local, [ev("$create_alias", "anon1", properties={"alias": "user"})])  # user's person: identified
    post(local, [ev("$set", "anon2", **{"$set": {"x": 1}})])
    post(local, [ev("$create_alias", "anon2", properties={"alias": "user"})])
    assert store.person("anon2")["distinct_ids"] == ["anon2"]
    assert store.counters()["merges_refused_already_identified"] == 1


def test_identify_with_anon_distinct_id_merges_too(local, store):
    post(local, [ev("page", "anon")])
    post(local, [ev("$identify", "user", properties={"$anon_distinct_id": "anon"})])
    assert store.person("anon")["distinct_ids"] == ["anon", "user"]


def test_illegal_ids_are_never_merged(local, store):
    post(local, [ev("$create_alias", "anonymous", properties={"alias": "user"})])
    assert store.person("user") is None or store.person("user")["distinct_ids"] == ["user"]
    assert store.counters()["merges_refused_illegal_id"] == 1


def test_personless_events_create_no_person(local, store):
    post(local, [ev("page", "visitor", properties={"$process_person_profile": False, "$set": {"a": 1}})])
    assert store.persons() == []
    assert store.events()[0]["person_id"] is None


def test_group_identify_merges_shallowly_and_sets_no_person_properties(local, store):
    group = {"$group_type": "company", "$group_key": "acme"}
    post(local, [ev("$groupidentify", "u", properties={**group, "$group_set": {"name": "Acme", "plan": {"t": 1}}})])
    post(local, [ev("$groupidentify", "u", properties={**group, "$group_set": {"plan": {"u": 2}}, "$set": {"x": 1}})])
    assert store.group("company", "acme")["properties"] == {"name": "Acme", "plan": {"u": 2}}
    assert store.person("u")["properties"] == {}


def test_groups_link_events_to_groups(local, store):
    post(local, [ev("used", "u", properties={"$groups": {"company": "acme", "team": "eng"}})])
    post(local, [ev("$groupidentify", "u", properties={"$group_type": "company", "$group_key": "acme"})])
    assert store.group("company", "acme")["events"] == 1


def test_duplicate_uuids_are_stored_once_and_counted(local, store):
    event = ev("$set", "u", **{"$set": {"n": 1}})
    post(local, [event])
    post(local, [dict(event, **{"$set": {"n": 2}})])
    assert len(store.events()) == 1
    assert store.person("u")["properties"] == {"n": 1}
    assert store.counters()["duplicates"] == 1


def test_distinct_ids_are_cut_at_200_characters(local, store):
    post(local, [ev("e", "x" * 300)])
    assert store.events()[0]["distinct_id"] == "x" * 200


def test_projects_are_kept_apart_and_keys_are_not_stored(local, store, tmp_path):
    post(local, [ev("$set", "u", **{"$set": {"p": "one"}})], api_key="phc_project_one_key")
    post(local, [ev("$set", "u", **{"$set": {"p": "two"}})], api_key="phc_project_two_key")
    assert sorted(p["properties"]["p"] for p in store.persons()) == ["one", "two"]
    raw = b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.is_file())  # db, -wal, -shm
    assert b"phc_project_one_key" not in raw


# --- durability and concurrency --------------------------------------------------------------


def test_state_survives_a_restart(tmp_path):
    path = tmp_path / "durable.sqlite3"
    first = Store(path)
    with LocalServer(first) as server:
        post(
            server,
            [ev("$set", "u", **{"$set": {"plan": "pro"}}), ev("$create_alias", "anon", properties={"alias": "u"})],
        )
    first.close()
    second = Store(path)
    assert second.person("anon")["properties"] == {"plan": "pro"}
    assert len(second.events()) == 2
    second.close()


def test_database_file_is_private(tmp_path):
    path = tmp_path / "sub" / "private.sqlite3"
    Store(path).close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_concurrent_requests_are_all_stored(local, store):
    def send(worker):
        for i in range(10):
            assert post(local, [ev("$set", "w%d" % worker, **{"$set": {"i": i}})]).status_code == 200

    threads = [threading.Thread(target=send, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.events()) == 80
    assert sorted(p["properties"]["i"] for p in store.persons()) == [9] * 8


def test_flags_come_from_the_flag_file(store):
    with LocalServer(store, flags={"new_dashboard": True, "checkout": "test", "off": False}) as server:
        body = {"api_key": KEY, "distinct_id": "u", "flag_keys_to_evaluate": ["new_dashboard", "checkout", "off", "x"]}
        flags = requests.post(server.url + "/flags/?v=4", json=body, timeout=5).json()["flags"]
    assert flags["new_dashboard"]["enabled"] is True and flags["checkout"]["variant"] == "test"
    assert flags["off"]["enabled"] is False and "x" not in flags


# --- what a peer can cost: bounded size, time and connections (real sockets) ----------------

SMALL = Limits(max_body_bytes=64 * 1024, max_inflated_bytes=1024 * 1024, max_header_bytes=4096,
               read_timeout=0.2, idle_timeout=0.2, max_connections=20, workers=2)  # fmt: skip


@pytest.fixture
def bounded(store):
    with LocalServer(store, limits=SMALL) as server:
        yield server


def connect(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)  # 10 s: a safety net, not the test
    return sock


def read_until_closed(sock):
    """Everything the server sends until it closes the connection."""
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def status_of(answer):
    return int(answer.split(b" ", 2)[1]) if answer else None


def head(path="/batch/", **headers):
    lines = ["POST %s HTTP/1.1" % path, "Host: 127.0.0.1"] + [
        "%s: %s" % (k.replace("_", "-"), v) for k, v in headers.items()
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def still_serving(server):
    assert post(server, [ev("after", "u")]).status_code == 200


def test_a_gzip_bomb_stops_at_the_inflated_limit_without_inflating_it(bounded, store):
    bomb = gzip.compress(b"\0" * (32 * 1024 * 1024), 9)  # 32 MiB inflated, ~32 KiB sent
    assert len(bomb) < SMALL.max_body_bytes
    tracemalloc.start()
    try:
        response = requests.post(bounded.url + "/batch/", data=bomb, headers={"Content-Encoding": "gzip"}, timeout=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 413 and "inflates to more than 1 MiB" in response.json()["error"]
    assert peak < 4 * SMALL.max_inflated_bytes  # gzip.decompress would hold all 32 MiB
    still_serving(bounded)
    assert [e["event"] for e in store.events()] == ["after"]


def test_a_deflate_bomb_and_an_unknown_encoding_are_refused(bounded):
    bomb = zlib.compress(b"\0" * (8 * 1024 * 1024), 9)
    answer = requests.post(bounded.url + "/batch/", data=bomb, headers={"Content-Encoding": "deflate"}, timeout=10)
    assert answer.status_code == 413
    answer = requests.post(bounded.url + "/batch/", data=b"x", headers={"Content-Encoding": "br"}, timeout=10)
    assert answer.status_code == 415 and "gzip or deflate" in answer.json()["error"]
    still_serving(bounded)


def test_inflate_accepts_concatenated_gzip_members_and_refuses_truncated_ones():
    whole = json.dumps({"a": 1}).encode()
    assert inflate(gzip.compress(whole[:3]) + gzip.compress(whole[3:]), "gzip", 1000) == whole
    with pytest.raises(HTTPError) as truncated:
        inflate(gzip.compress(whole)[:-6], "gzip", 1000)
    assert truncated.value.status == 400
    with pytest.raises(HTTPError) as trailing:
        inflate(zlib.compress(whole) + b"junk", "deflate", 1000)
    assert trailing.value.status == 400
    assert inflate(whole, "", 1000) == whole
    with pytest.raises(HTTPError) as large:
        inflate(whole, "identity", 3)
    assert large.value.status == 413


def test_a_body_over_the_limit_is_answered_413_to_a_client_still_sending_it(bounded):
    body = b"x" * (16 * 1024 * 1024)  # far more than socket buffers hold: still sending when refused
    with connect(bounded) as sock:
        sock.sendall(head(Content_Length=len(body)))
        sock.sendall(body)  # a reset here (the refused body left unread) would lose the answer
        answer = read_until_closed(sock)
    assert status_of(answer) == 413 and b"larger than 65536 bytes" in answer
    response = requests.post(bounded.url + "/batch/", data=body, timeout=10)
    assert response.status_code == 413
    still_serving(bounded)


def test_a_huge_content_length_is_refused_before_any_body_is_read(bounded):
    with connect(bounded) as sock:
        sock.sendall(head(Content_Length=10**12))
        answer = read_until_closed(sock)
    assert status_of(answer) == 413
    still_serving(bounded)


@pytest.mark.parametrize(
    "length,message",
    [("-1", "is not a number of bytes"), ("ten", "is not a number of bytes"), ("1e3", "is not a number")],
)
def test_a_content_length_that_is_not_a_number_is_answered_400(bounded, store, length, message):
    with connect(bounded) as sock:
        sock.sendall(head(Content_Length=length) + b'{"api_key": "k", "batch": [')  # and keeps streaming
        answer = read_until_closed(sock)
    assert status_of(answer) == 400 and message.encode() in answer
    assert store.events() == []
    still_serving(bounded)


def test_conflicting_content_lengths_are_answered_400(bounded):
    with connect(bounded) as sock:
        sock.sendall(b"POST /batch/ HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}")
        assert status_of(read_until_closed(sock)) == 400


@pytest.mark.parametrize("headers", [{}, {"Transfer_Encoding": "chunked"}])
def test_a_body_without_content_length_is_answered_411(bounded, headers):
    with connect(bounded) as sock:
        sock.sendall(head(**headers) + b"5\r\nhello\r\n0\r\n\r\n")
        answer = read_until_closed(sock)
    assert status_of(answer) == 411 and b"Content-Length" in answer
    still_serving(bounded)


def test_a_connection_that_sends_nothing_is_closed(bounded):
    with connect(bounded) as sock:
        assert sock.recv(1) == b""  # closed after idle_timeout, without an answer


@pytest.mark.parametrize("sent", [b"POST /batch/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-", b"POST /bat"])
def test_a_head_that_stops_arriving_is_answered_408(bounded, sent):
    with connect(bounded) as sock:
        sock.sendall(sent)
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"did not arrive within 0.2 s" in answer
    still_serving(bounded)


def test_a_body_that_stops_arriving_is_answered_408(bounded, store):
    with connect(bounded) as sock:
        sock.sendall(head(Content_Length=1000) + b'{"api_key": ')
        assert status_of(read_until_closed(sock)) == 408
    assert store.events() == []


def test_a_head_over_the_limit_is_answered_431(bounded):
    with connect(bounded) as sock:
        sock.sendall(b"POST /batch/ HTTP/1.1\r\n" + b"X-Pad: " + b"x" * 5000 + b"\r\n\r\n")
        assert status_of(read_until_closed(sock)) == 431
    still_serving(bounded)


def test_idle_connections_cost_no_thread_and_do_not_starve_requests(store):
    limits = Limits(max_connections=20, workers=2, idle_timeout=60)
    with LocalServer(store, limits=limits) as server:
        assert post(server, [ev("first", "u")]).status_code == 200  # once served, every worker has started
        before = threading.active_count()
        idle = [connect(server) for _ in range(100)]
        try:
            assert post(server, [ev("real", "u")]).status_code == 200  # the 101st connection is served
            serving = [t for t in threading.enumerate() if t.name.startswith("posthog-otel-local")]
            assert len(serving) == limits.workers + 1  # the workers and the one accept loop
            assert (
                threading.active_count() <= before + 5
            )  # not one per connection (other tests' threads may come and go)
            evicted = idle[: 100 - limits.max_connections]  # the longest idle make room, oldest first
            assert all(sock.recv(1) == b"" for sock in evicted)
        finally:
            for sock in idle:
                sock.close()
    assert [e["event"] for e in store.events()] == ["first", "real"]


def test_a_connection_evicted_while_it_was_ready_is_not_served(store):
    # One turn of the accept loop can see both a new connection (which evicts the oldest idle one) and that idle
    # one ready to read. Turns are driven by hand here, so the order of events is the test's, not the scheduler's.
    server = LocalServer(store, limits=Limits(max_connections=1, workers=1, idle_timeout=60))
    httpd = server._httpd
    try:
        first = connect(server)
        while not httpd._idle:
            httpd._turn(5)
        second = connect(server)  # waits in the listen backlog: the listener is ready
        first.close()  # and now the idle connection is ready too (end of stream)
        httpd._turn(5)  # accepts the second, evicting the first, and must not then dispatch the first
        assert [c.peer for c in httpd._idle] == [second.getsockname()]
        assert httpd._ready.empty()
        second.close()
    finally:
        httpd._close_everything()
        httpd.server_close()


def test_keep_alive_and_pipelined_requests_are_all_answered(bounded, store):
    one = json.dumps({"api_key": KEY, "batch": [ev("one", "u")]}).encode()
    two = json.dumps({"api_key": KEY, "batch": [ev("two", "u")]}).encode()
    with connect(bounded) as sock:
        sock.sendall(head(Content_Length=len(one)) + one + head(Content_Length=len(two)) + two)
        answers = b""
        while answers.count(b"HTTP/1.1 200") < 2:
            data = sock.recv(65536)
            assert data, answers
            answers += data
    assert [e["event"] for e in store.events()] == ["one", "two"]
    with requests.Session() as session:  # one connection, kept alive between requests
        for name in ("three", "four"):
            body = {"api_key": KEY, "batch": [ev(name, "u")]}
            assert session.post(bounded.url + "/batch/", json=body, timeout=5).status_code == 200
    assert len(store.events()) == 4


class BrokenStore(Store):
    def ingest(self, api_key, events):
        raise RuntimeError("disk on fire")


def test_an_internal_error_is_answered_500_and_the_server_keeps_serving(tmp_path, caplog):
    broken = BrokenStore(tmp_path / "broken.sqlite3")
    with LocalServer(broken, limits=SMALL) as server:
        response = post(server, [ev("e", "u")])
        assert response.status_code == 500 and "internal error" in response.json()["error"]
        assert requests.get(server.url + "/", timeout=5).status_code == 200
    assert "disk on fire" in caplog.text
    broken.close()


def test_requests_are_reported_one_line_each(store):
    lines = []
    with LocalServer(store, limits=SMALL, on_request=lines.append) as server:
        post(server, [ev("e", "u")])
        requests.post(server.url + "/batch/", json={"batch": []}, timeout=5)
    assert lines == [
        "POST /batch/ 200 1 event(s) stored, 0 duplicate(s)",
        "POST /batch/ 400 api_key is missing: put the project API key in the body's api_key field",
    ]


# --- issue 18: heads that crawl, gzip members, deep JSON --------------------------------------


def test_heads_that_crawl_hold_no_worker(store):
    """Every worker used to wait on a partial head for read_timeout: 20 of them stopped a
    2-worker server for 30 s. Heads are now read by the accept loop, without blocking."""
    limits = Limits(workers=2, read_timeout=30, max_connections=64)
    with LocalServer(store, limits=limits) as server:
        crawling = [connect(server) for _ in range(20)]
        try:
            for sock in crawling:
                sock.sendall(b"POST /batch/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n")
            response = requests.post(
                server.url + "/batch/", json={"api_key": KEY, "batch": [ev("real", "u")]}, timeout=5
            )
            assert response.status_code == 200
        finally:
            for sock in crawling:
                sock.close()
    assert [e["event"] for e in store.events()] == ["real"]


def test_when_connections_run_out_the_oldest_crawling_head_makes_room(store):
    limits = Limits(workers=2, read_timeout=30, max_connections=10)
    with LocalServer(store, limits=limits) as server:
        crawling = [connect(server) for _ in range(10)]
        try:
            for sock in crawling:
                sock.sendall(b"POST /batch/ HTTP/1.1\r\n")
            still_serving(server)
            try:
                assert crawling[0].recv(1) == b""  # the oldest was closed for the newcomer
            except ConnectionResetError:  # closed with its head unread: a reset says the same
                pass
        finally:
            for sock in crawling:
                sock.close()


def test_json_nested_past_the_stack_is_answered_400(bounded):
    response = requests.post(bounded.url + "/batch/", data=b"[" * 50_000, timeout=10)
    assert response.status_code == 400 and "nested too deeply" in response.json()["error"]
    still_serving(bounded)


def test_inflate_takes_an_empty_gzip_and_refuses_a_thousand_members_and_more():
    assert inflate(gzip.compress(b""), "gzip", 100) == b""
    assert inflate(gzip.compress(b"") + gzip.compress(b"x"), "gzip", 100) == b"x"
    assert inflate(zlib.compress(b""), "deflate", 100) == b""
    many = gzip.compress(b"a") * 1024
    assert inflate(many, "gzip", 10_000) == b"a" * 1024
    with pytest.raises(HTTPError) as refused:
        inflate(many + gzip.compress(b"a"), "gzip", 10_000)
    assert refused.value.status == 400 and "more than 1024 gzip members" in str(refused.value)


def test_inflate_copies_a_bounded_slice_per_member():
    """A member used to be handed all the rest of the body, which zlib copied back: quadratic.
    Now each decompress call gets at most one feed slice of input."""
    import posthog_otel._inflate as module

    seen = []

    original = zlib.decompressobj

    class Spy:
        def __init__(self, wbits):
            self.inner = original(wbits)

        def decompress(self, data, limit):
            seen.append(len(data))
            return self.inner.decompress(data, limit)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    members = [os.urandom(150) for _ in range(1000)]
    body = b"".join(gzip.compress(member) for member in members)
    assert len(body) > 2 * module._FEED
    module.zlib.decompressobj = Spy
    try:
        assert inflate(body, "gzip", 10**6) == b"".join(members)
    finally:
        module.zlib.decompressobj = original
    assert max(seen) <= module._FEED


@pytest.mark.parametrize(
    "where",
    [
        lambda s: {"event": "e", "distinct_id": s},
        lambda s: {"event": "e", "distinct_id": "u", "properties": {"$groups": {"company": s}}},
        lambda s: {
            "event": "$groupidentify",
            "distinct_id": "u",
            "properties": {"$group_type": "company", "$group_key": s},
        },
        lambda s: {"event": "e", "distinct_id": "u", "properties": {s: 1}},
        lambda s: {"event": s, "distinct_id": "u"},
        lambda s: {"event": "$set", "distinct_id": "u", "$set": {"name": [s]}},
    ],
)
@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "x\\udbffy", "\\ude00\\ud83d"])
def test_a_lone_surrogate_anywhere_is_answered_400_as_posthog_does(local, store, where, escape):
    """A raw client's ``"\\ud800"`` is text Python decodes and SQLite cannot store (it was a 500);
    PostHog's capture refuses the body as invalid JSON."""
    body = json.dumps({"api_key": KEY, "batch": [where("SURROGATE")]}).replace("SURROGATE", escape)
    for path in ("/batch/", "/flags/?v=4"):
        response = requests.post(local.url + path, data=body.encode(), timeout=5)
        assert response.status_code == 400, (path, response.text)
        assert "lone UTF-16 surrogate" in response.json()["error"]
    assert store.events() == []
    still_serving(local)


def test_paired_surrogate_escapes_are_text_and_stored(local, store):
    body = json.dumps({"api_key": KEY, "batch": [ev("e", "\U0001f600 \\ud800")]}, ensure_ascii=True)
    assert "\\ud83d\\ude00" in body
    assert requests.post(local.url + "/batch/", data=body.encode(), timeout=5).status_code == 200
    assert [e["distinct_id"] for e in store.events()] == ["\U0001f600 \\ud800"]


def test_answers_on_a_kept_alive_connection_leave_without_waiting_for_the_clients_ack(local):
    # An answer is two writes (head, body). With Nagle's algorithm the body waits for the
    # client's delayed ACK of the head: 40 ms per request on Linux, every request of a session.
    with requests.Session() as session:
        body = {"api_key": KEY, "batch": [ev("$set", "u", **{"$set": {"a": 1}})]}
        assert session.post(local.url + "/batch/", json=body, timeout=5).status_code == 200
        deadline = time.monotonic() + 10  # a safety net: the server files it as idle once answered
        while not local._httpd._idle and time.monotonic() < deadline:
            time.sleep(0.01)
        connections = list(local._httpd._idle)  # the session's connection, kept alive
        assert connections
        for connection in connections:
            assert connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
