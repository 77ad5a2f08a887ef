"""The `posthog-otel` command: inspection output, follow mode, the server command, the demo."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import pytest
import requests

from posthog_otel import cli
from posthog_otel._local.server import LocalServer
from posthog_otel._local.store import Store

from .conftest import API_KEY
from .support import child_env
from .test_local_server import ev, post

BIN = os.path.dirname(sys.executable)


def run(*argv):
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture
def db(tmp_path):
    """A database holding a small, known story."""
    path = tmp_path / "cli.sqlite3"
    store = Store(path)
    with LocalServer(store) as server:
        post(server, [ev("page_viewed", "anon", properties={"page": "landing"})])
        post(server, [ev("$set", "user_456", **{"$set": {"email": "user@example.com", "plan": "free"}})])
        post(server, [ev("$create_alias", "anon", properties={"distinct_id": "anon", "alias": "user_456"})])
        post(server, [ev("$groupidentify", "user_456", properties={"$group_type": "company", "$group_key": "acme", "$group_set": {"name": "Acme"}})])
        post(server, [ev("feature_used", "user_456", properties={"$groups": {"company": "acme"}, "feature": "x"})])
    store.close()
    return str(path)


def test_persons_is_an_aligned_table_with_counts(db):
    code, text = run("persons", "--db", db)
    assert code == 0
    header, row, footer = text.strip().splitlines()
    assert header.split() == ["PERSON", "DISTINCT", "IDS", "PROPERTIES", "EVENTS", "LAST", "SEEN"]
    assert "anon, user_456" in row and "email=user@example.com plan=free" in row
    assert row.index("anon") == header.index("DISTINCT IDS")
    assert footer == "1 person"


def test_person_shows_properties_ids_and_recent_events(db):
    code, text = run("person", "anon", "--db", db)
    assert code == 0
    assert "Distinct ids (2)" in text and "  user_456" in text
    assert "email  user@example.com" in text
    assert "Recent events (5 of 5)" in text
    assert text.index("page_viewed") < text.index("feature_used")


def test_person_unknown_is_an_error(db):
    code, text = run("person", "nobody", "--db", db)
    assert code == 1 and "No person has the distinct id 'nobody'" in text


def test_groups_table(db):
    code, text = run("groups", "--db", db)
    lines = text.strip().splitlines()
    assert lines[0].split()[:3] == ["TYPE", "KEY", "PROPERTIES"]
    assert lines[1].split()[:3] == ["company", "acme", "name=Acme"]
    assert lines[-1] == "1 group"


def test_events_with_limit_and_filters(db):
    code, text = run("events", "--db", db, "--limit", "2")
    lines = text.strip().splitlines()
    assert [line.split()[2] for line in lines[1:3]] == ["$groupidentify", "feature_used"]
    assert lines[-1] == "2 event(s)"
    _, filtered = run("events", "--db", db, "--event", "page_viewed")
    assert "page_viewed" in filtered and "feature_used" not in filtered


def test_json_output(db):
    _, text = run("persons", "--db", db, "--json")
    (person,) = json.loads(text)
    assert person["distinct_ids"] == ["anon", "user_456"]
    _, text = run("events", "--db", db, "--json")
    assert [json.loads(line)["event"] for line in text.splitlines()][-1] == "feature_used"


def test_missing_database_says_what_to_do(tmp_path):
    code, text = run("persons", "--db", str(tmp_path / "none.sqlite3"))
    assert code == 1 and "posthog-otel server" in text and "posthog-otel demo" in text


def test_no_command_prints_help():
    code, text = run()
    assert code == 2 and "demo" in text and "doctor" in text


def test_server_command_and_events_follow(tmp_path):
    db = str(tmp_path / "served.sqlite3")
    server = subprocess.Popen(
        [os.path.join(BIN, "posthog-otel"), "server", "--port", "0", "--db", db],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    follower = None
    try:
        first = server.stdout.readline()
        assert "listening on http://127.0.0.1:" in first
        url = first.split()[-1]
        post_to(url, [ev("first", "u")])
        follower = subprocess.Popen(
            [os.path.join(BIN, "posthog-otel"), "events", "-f", "--db", db], stdout=subprocess.PIPE, text=True
        )
        seen = [follower.stdout.readline() for _ in range(3)]  # header, first event, count line
        assert "first" in seen[1] and "following" in seen[2]
        post_to(url, [ev("second", "u")])
        assert "second" in follower.stdout.readline()
    finally:
        for process in (follower, server):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)


def post_to(url, batch):
    response = requests.post(url + "/batch/", json={"api_key": API_KEY, "batch": batch}, timeout=5)
    assert response.status_code == 200


def test_demo_runs_end_to_end_on_the_local_server(tmp_path):
    db = str(tmp_path / "demo.sqlite3")
    started = time.monotonic()
    result = subprocess.run(
        [os.path.join(BIN, "posthog-otel"), "demo", "--db", db],
        capture_output=True, text=True, timeout=60, env=child_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 20
    text = result.stdout
    assert "[8/8]" in text and "done in" in text
    assert "dropped set() properties value 'callback'" in text
    persons = text[text.index("Persons"): text.index("Groups")]
    assert "demo-anonymous-abc123, demo-user-456" in persons and "1 person" in persons
    groups = text[text.index("Groups"):]
    assert "acme_corp" in groups and "employees=275" in groups and "engineering" in groups
    store = Store(db)
    person = store.person("demo-anonymous-abc123")
    assert person["properties"]["plan"] == "premium"
    assert person["properties"]["first_visit"] == "2024-01-10"
    assert person["properties"]["address.city"] == "Paris"
    assert "callback" not in person["properties"]
    store.close()


def test_demo_with_a_key_sends_to_that_posthog(server, tmp_path):
    env = child_env(POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url)
    result = subprocess.run(
        [os.path.join(BIN, "posthog-otel"), "demo"], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "sending the demo to %s" % server.url in result.stdout
    assert "Look for demo-user-456" in result.stdout
    assert {e["event"] for e in server.events} >= {"$create_alias", "$set", "$groupidentify", "feature_used"}
