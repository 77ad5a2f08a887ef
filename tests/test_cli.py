"""The `posthog-otel` command: inspection output, follow mode, the server command, the demo."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import pathlib
import re
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager

import pytest
import requests

import posthog_otel
from posthog_otel import cli
from posthog_otel._local.server import LocalServer
from posthog_otel._local.store import Store, project_of

from .conftest import API_KEY
from .support import child_env
from .test_local_server import KEY as API_KEY_OF_DB
from .test_local_server import ev, post

BIN = os.path.dirname(sys.executable)


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main([str(a) for a in argv], out=out, err=err)
    return code, out.getvalue() + err.getvalue()


def run_apart(*argv):
    """(exit status, stdout, stderr) kept apart; a command that does not end (a server
    that started serving where it should have refused) fails the test instead of hanging it."""
    out, err = io.StringIO(), io.StringIO()
    result = []
    worker = threading.Thread(
        target=lambda: result.append(cli.main([str(a) for a in argv], out=out, err=err)), daemon=True
    )
    worker.start()
    worker.join(timeout=60)
    assert result, "posthog-otel %s did not end: %s" % (" ".join(map(str, argv)), out.getvalue())
    return result[0], out.getvalue(), err.getvalue()


@pytest.fixture
def db(tmp_path):
    """A database holding a small, known story."""
    path = tmp_path / "cli.sqlite3"
    store = Store(path)
    with LocalServer(store) as server:
        post(server, [ev("page_viewed", "anon", properties={"page": "landing"})])
        post(server, [ev("$set", "user_456", **{"$set": {"email": "user@example.com", "plan": "free"}})])
        post(server, [ev("$create_alias", "anon", properties={"distinct_id": "anon", "alias": "user_456"})])
        post(
            server,
            [
                ev(
                    "$groupidentify",
                    "user_456",
                    properties={"$group_type": "company", "$group_key": "acme", "$group_set": {"name": "Acme"}},
                )
            ],
        )
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


def test_person_unknown_is_an_error_and_json_stays_json(db):
    code, out, err = run_apart("person", "nobody", "--db", db)
    assert code == 1 and out == "" and "no person has the distinct id 'nobody'" in err
    code, out, err = run_apart("person", "nobody", "--db", db, "--json")
    assert code == 1 and json.loads(out) is None and "'nobody'" in err


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


def json_lines(text):
    return [json.loads(line) for line in text.splitlines()]


def test_lists_print_json_lines_and_one_person_one_object(db):
    """JSON Lines for every list: `events -f` never ends, so a list cannot be one array;
    the finished lists use the same format so one parser reads them all."""
    _, out, _ = run_apart("persons", "--db", db, "--json")
    (person,) = json_lines(out)
    assert person["distinct_ids"] == ["anon", "user_456"] and len(person["project"]) == 12
    _, out, _ = run_apart("events", "--db", db, "--json")
    assert [e["event"] for e in json_lines(out)][-1] == "feature_used"
    _, out, _ = run_apart("groups", "--db", db, "--json")
    assert [(g["type"], g["key"]) for g in json_lines(out)] == [("company", "acme")]
    _, out, _ = run_apart("projects", "--db", db, "--json")
    assert [p["events"] for p in json_lines(out)] == [5]
    _, out, _ = run_apart("person", "anon", "--db", db, "--json")
    assert json.loads(out)["distinct_ids"] == ["anon", "user_456"]


def test_missing_database_says_what_to_do_and_creates_nothing(tmp_path):
    code, out, err = run_apart("persons", "--db", tmp_path / "none.sqlite3")
    assert code == 1 and out == ""
    assert "posthog-otel server" in err and "posthog-otel demo" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_no_command_prints_help():
    code, text = run()
    assert code == 2 and "demo" in text and "doctor" in text


def test_server_names_its_flags_suggests_commands_for_its_database_and_logs_requests(tmp_path):
    db = str(tmp_path / "served db.sqlite3")
    flags = tmp_path / "flags.json"
    flags.write_text('{"new_dashboard": true, "checkout": "test"}')
    server = subprocess.Popen(
        [os.path.join(BIN, "posthog-otel"), "server", "--port", "0", "--db", db, "--flags", str(flags), "-v"],
        stdout=subprocess.PIPE, text=True, env=child_env(),
    )  # fmt: skip
    follower = None
    try:
        first = server.stdout.readline()
        assert "listening on http://127.0.0.1:" in first
        url = first.split()[-1]
        banner = [server.stdout.readline() for _ in range(6)]
        assert banner[0].strip() == "database: %s" % db
        assert banner[1].strip() == "flags: %s (2 flags)" % flags
        assert banner[2].strip().startswith("web pages: %s/ " % url)
        (inspect,) = [line for line in banner if line.strip().startswith("inspect:")]
        suggested = shlex.split(inspect.split("inspect:", 1)[1].split("(also")[0])
        assert suggested[:3] == ["posthog-otel", "events", "-f"] and suggested[-2:] == ["--db", db]
        post_to(url, [ev("first", "u")])
        assert server.stdout.readline().split()[1:4] == ["POST", "/batch/", "200"]  # -v: one line per request
        follower = subprocess.Popen(
            [os.path.join(BIN, suggested[0])] + suggested[1:], stdout=subprocess.PIPE, text=True, env=child_env()
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
    persons = text[text.index("Persons") : text.index("Groups")]
    assert "demo-anonymous-abc123, demo-user-456" in persons and "1 person" in persons
    groups = text[text.index("Groups") :]
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


# --- projects: one per API key, as in PostHog ------------------------------------------------------

OTHER_KEY = "phc_other_project_key_0123456789"


@pytest.fixture
def two_projects(db):
    """The story's project plus another key's, where the same distinct id is someone else."""
    store = Store(db)
    with LocalServer(store) as server:
        post(server, [ev("$set", "anon", **{"$set": {"team": "other"}})], api_key=OTHER_KEY)
        post(
            server,
            [ev("$groupidentify", "anon", properties={"$group_type": "company", "$group_key": "acme"})],
            api_key=OTHER_KEY,
        )
    store.close()
    return db


def test_several_projects_are_listed_apart_with_a_project_column(two_projects):
    code, text = run("persons", "--db", two_projects)
    header, *rows, footer = text.strip().splitlines()
    assert header.split()[:2] == ["PROJECT", "PERSON"] and footer == "2 persons"
    assert {row.split()[0] for row in rows} == {project_of(API_KEY_OF_DB), project_of(OTHER_KEY)}
    _, text = run("groups", "--db", two_projects)
    assert text.strip().splitlines()[-1] == "2 groups"  # the same group key, in two projects
    _, text = run("events", "--db", two_projects)
    assert text.splitlines()[0].split()[0] == "PROJECT"


def test_key_scopes_every_command_to_one_project(two_projects):
    _, out, _ = run_apart("persons", "--db", two_projects, "--key", OTHER_KEY, "--json")
    (person,) = json_lines(out)
    assert person["properties"] == {"team": "other"} and person["project"] == project_of(OTHER_KEY)
    code, text = run("persons", "--db", two_projects, "--key", OTHER_KEY)
    assert code == 0 and "PROJECT" not in text and "team=other" in text and "user_456" not in text
    _, text = run("person", "anon", "--db", two_projects, "--key", API_KEY_OF_DB)
    assert "Distinct ids (2)" in text and "email  user@example.com" in text
    _, out, _ = run_apart("events", "--db", two_projects, "--key", project_of(OTHER_KEY), "--json")  # or the id
    assert [e["event"] for e in json_lines(out)] == ["$set", "$groupidentify"]


def test_posthog_api_key_in_the_environment_chooses_the_project(two_projects, monkeypatch):
    monkeypatch.setenv("POSTHOG_API_KEY", OTHER_KEY)
    _, out, _ = run_apart("groups", "--db", two_projects, "--json")
    assert [g["project"] for g in json_lines(out)] == [project_of(OTHER_KEY)]
    monkeypatch.setenv("POSTHOG_API_KEY", "phc_a_key_with_nothing_here")
    code, out, err = run_apart("persons", "--db", two_projects)
    assert code == 0 and "0 persons" in out
    assert "POSTHOG_API_KEY" in err and "posthog-otel projects" in err and "phc_a_key_with_nothing_here" not in err


def test_a_distinct_id_in_several_projects_asks_for_a_key(two_projects):
    code, out, err = run_apart("person", "anon", "--db", two_projects)
    assert code == 1 and out == ""
    assert "in 2 projects" in err and "--key" in err and len(err.splitlines()) == 1


def test_projects_lists_keys_redacted(two_projects, tmp_path):
    code, text = run("projects", "--db", two_projects)
    header, *rows, footer = text.strip().splitlines()
    assert header.split() == ["PROJECT", "KEY", "EVENTS", "PERSONS", "GROUPS", "LAST", "RECEIVED"]
    assert footer == "2 projects" and "phc_...89" in text and OTHER_KEY not in text
    raw = b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.is_file())
    assert OTHER_KEY.encode() not in raw and API_KEY_OF_DB.encode() not in raw


def test_the_events_table_names_the_flag_a_feature_flag_call_was_about(db):
    store = Store(db)
    with LocalServer(store) as server:
        flag = {
            "$feature_flag": "new_dashboard",
            "$feature_flag_response": "variant-b",
            "$feature/new_dashboard": "variant-b",
        }
        post(server, [ev("$feature_flag_called", "user_456", properties=flag)])
    store.close()
    _, text = run("events", "--db", db, "--event", "$feature_flag_called")
    assert "flag new_dashboard=variant-b" in text.splitlines()[1]


# --- errors: one line, what is wrong and what to do, non-zero exit ----------------------------------


def test_version():
    out = io.StringIO()
    with pytest.raises(SystemExit) as done:
        with contextlib.redirect_stdout(out):
            cli.main(["--version"])
    assert done.value.code == 0 and out.getvalue().strip() == "posthog-otel %s" % posthog_otel.__version__


def every_help_text():
    texts = []
    for argv in [[]] + [
        [name] for name in ("demo", "server", "projects", "persons", "person", "groups", "events", "doctor")
    ]:
        out = io.StringIO()
        with pytest.raises(SystemExit), contextlib.redirect_stdout(out):
            cli.main(argv + ["--help"])
        texts.append(out.getvalue())
    return "\n".join(texts)


def test_user_facing_text_never_says_seed():
    """Users never saw the document this project started from; the word means nothing to them."""
    assert "seed" not in every_help_text().lower()
    root = pathlib.Path(__file__).resolve().parent.parent
    documents = [root / "README.md", *(root / "docs").glob("*.md"), *(root / "examples").glob("*.py")]
    design_notes = {"design.md", "reliability.md"}  # for developers, and the lead's
    assert [p.name for p in documents if p.name not in design_notes and "seed" in p.read_text().lower()] == []


@pytest.mark.parametrize("port", ["-1", "70000", "http"])
def test_a_port_out_of_range_is_one_line_and_status_2(port, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["server", "--port", port, "--db", str(tmp_path / "x.sqlite3")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and len(err.splitlines()) == 1
    assert "use 1-65535, or 0 for a free one" in err and "--port" in err


def test_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run_apart("server", "--port", port, "--db", tmp_path / "x.sqlite3")
    assert code == 1 and out == "" and len(err.splitlines()) == 1
    assert "port %d is in use" % port in err and "--port 0" in err


@contextmanager
def unprivileged():
    """Permissions apply (root ignores them): a nobody effective uid while inside.

    What the commands import on first use is imported first, as root: nobody may not be able to
    read the checkout (a clone in a private temporary directory, as CI's may be).
    """
    if os.geteuid() != 0:
        yield
        return
    for module in ("demo", "server", "store", "flag_file", "database", "render"):
        importlib.import_module("posthog_otel._local." + module)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def test_a_database_in_a_read_only_folder_is_one_line(tmp_path):
    folder = pathlib.Path(tempfile.mkdtemp())  # outside tmp_path, whose parents only root may enter
    try:
        os.chmod(folder, 0o555)
        with unprivileged():
            code, out, err = run_apart("server", "--port", "0", "--db", folder / "local.sqlite3")
            demo_code, _, demo_err = run_apart("demo", "--db", folder / "sub" / "local.sqlite3")
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(folder)
    assert code == 1 and out == "" and len(err.splitlines()) == 1
    assert "cannot create the database" in err and "permission denied" in err and "--db" in err
    assert demo_code == 1 and "permission denied" in demo_err


def test_a_read_only_database_file_is_one_line(tmp_path):
    folder = pathlib.Path(tempfile.mkdtemp())
    path = folder / "local.sqlite3"
    Store(path).close()
    try:
        os.chmod(path, 0o444)
        os.chmod(folder, 0o777)
        with unprivileged():
            code, _, err = run_apart("server", "--port", "0", "--db", path)
    finally:
        shutil.rmtree(folder)
    assert code == 1 and "cannot write the database" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("command", [["server", "--port", "0"], ["persons"], ["demo"]])
def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path, command):
    path = tmp_path / "notes.txt"
    path.write_text("my notes, not a database\n" * 100)
    code, out, err = run_apart(*command, "--db", path)
    assert code == 1 and len(err.splitlines()) == 1 and "is not a SQLite database" in err
    assert path.read_text() == "my notes, not a database\n" * 100


def test_another_applications_sqlite_database_is_not_written_to(tmp_path):
    path = tmp_path / "app.sqlite3"
    with sqlite3.connect(str(path)) as other:
        other.execute("CREATE TABLE notes (body TEXT)")
    code, _, err = run_apart("server", "--port", "0", "--db", path)
    assert code == 1 and "database of something else (tables: notes)" in err
    with sqlite3.connect(str(path)) as other:
        assert [r[0] for r in other.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["notes"]


def test_a_directory_as_database_is_one_line(tmp_path):
    code, _, err = run_apart("persons", "--db", tmp_path)
    assert code == 1 and "is a directory" in err


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "not found"),
        ("{nope", "is not valid JSON"),
        ('["new_dashboard"]', "holds a JSON array"),
        ('{"new_dashboard": 1}', "flag 'new_dashboard' is 1 (number): use true or false, or a variant name"),
        ('{"checkout": {"variant": "b"}}', 'flag \'checkout\' is {"variant": "b"} (object)'),
        ('{"off": null}', "(null)"),
    ],
)
def test_a_bad_flag_file_is_one_line(tmp_path, content, message):
    flags = tmp_path / "flags.json"
    if content is not None:
        flags.write_text(content)
    code, out, err = run_apart("server", "--port", "0", "--db", tmp_path / "x.sqlite3", "--flags", flags)
    assert code == 1 and out == "" and len(err.splitlines()) == 1
    assert message in err and str(flags) in err


# --- the demo shows what its own run produced --------------------------------------------------------


def run_demo(db):
    result = subprocess.run(
        [os.path.join(BIN, "posthog-otel"), "demo", "--db", db],
        capture_output=True, text=True, timeout=60, env=child_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_demo_shows_only_its_own_run_and_leaves_other_projects_alone(db):
    shown = []
    for _ in range(2):
        text = run_demo(db)
        persons = text[text.index("Persons") : text.index("Groups")]
        groups = text[text.index("Groups") :]
        assert "1 person\n" in persons and "user_456" not in persons
        assert "2 groups\n" in groups
        rows = [
            line.strip()
            for line in text.splitlines()
            if line.startswith("  ") and ("demo-" in line or "acme_corp" in line)
        ]
        shown.append([re.split(r"\s{2,}", row)[-2] for row in rows])  # the EVENTS column
    assert shown[0] == shown[1]  # the second run does not add to the first
    code, suggested = run(*shlex.split(text.split("Keep exploring:", 1)[1].split("(also")[0])[1:])
    assert code == 0 and "demo-user-456" in suggested and "Distinct ids (2)" in suggested
    _, out, _ = run_apart("persons", "--db", db, "--key", API_KEY_OF_DB, "--json")
    assert [p["distinct_ids"] for p in json_lines(out)] == [["anon", "user_456"]]  # the story's project is intact


def test_exceptions_show_their_type_message_and_top_frame(tmp_path, provider):
    path = tmp_path / "errors.sqlite3"
    store = Store(path)
    with LocalServer(store) as server:
        pipeline = posthog_otel.configure(api_key=API_KEY, host=server.url, logger_provider=provider)
        with posthog_otel.new_context():
            posthog_otel.identify_context("user_456")
            try:
                {}["sku-42"]
            except KeyError as error:
                posthog_otel.capture_exception(error)
                line = "tests/%s:%d" % (pathlib.Path(__file__).name, error.__traceback__.tb_lineno)
        assert pipeline.flush()
    store.close()
    _, text = run("events", "--db", path, "--event", "$exception")
    row = text.splitlines()[1]
    assert "KeyError: 'sku-42' at test_exceptions_show_their_type_messa" in row  # cut at the cell's width
    _, text = run("person", "user_456", "--db", path)
    assert "Recent exceptions (1)" in text
    assert "  KeyError: 'sku-42'\n      at test_exceptions_show_their_type_message_and_top_frame (%s)" % line in text
