"""The local server's web pages over HTTP: property history, project choice, headers, the
live tail's feed, exceptions from PostHog's own SDK, flags explained, escaping.

What a browser shows is in ``test_local_ui_browser.py``; here the store's history rules
and the answers themselves are checked, fast.
"""

from __future__ import annotations

import html
import io
import json
import re
from html.parser import HTMLParser
from urllib.parse import unquote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posthog_otel import cli
from posthog_otel._local import views
from posthog_otel._local.server import LocalServer
from posthog_otel._local.store import Store, project_of
from posthog_otel._local.ui_exceptions import issue_of
from posthog_otel._local.ui_markup import esc, fill, href, value

from .test_flags import DEFINITIONS
from .test_local_server import KEY, ev, post

PROJECT = project_of(KEY)


@pytest.fixture
def store(tmp_path):
    db = Store(tmp_path / "ui.sqlite3")
    yield db
    db.close()


@pytest.fixture
def local(store):
    with LocalServer(store, flags=DEFINITIONS) as server:
        yield server


def get(local, *path, **query):
    return requests.get(local.url + href(*path, **query), timeout=5, allow_redirects=False)


def page_text(response):
    """What the page says, without its markup, spaces run together."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.text)).split())


def changes(store, distinct_id):
    person = store.person(distinct_id)
    return {
        key: [(c["value"], c["operation"], c["applied"]) for c in rows]
        for key, rows in views.person_history(store, person["id"]).items()
    }


# --- where each property came from ----------------------------------------------------------------


def test_history_keeps_every_set_set_once_and_unset_with_its_event(local, store):
    first = ev("$set", "u", timestamp="2024-01-10T10:00:00Z", **{"$set": {"plan": "free"}, "$set_once": {"src": "ad"}})
    post(local, [first])
    post(local, [ev("$set_once", "u", **{"$set_once": {"src": "mail", "plan": "x"}})])
    post(local, [ev("upgrade", "u", properties={"$set": {"plan": "pro"}, "$unset": ["gone"]})])
    post(local, [ev("cleanup", "u", properties={"$unset": ["src"]})])
    assert changes(store, "u") == {
        "plan": [("free", "$set", True), ("x", "$set_once", False), ("pro", "$set", True)],
        "src": [("ad", "$set_once", True), ("mail", "$set_once", False), (None, "$unset", True)],
        "gone": [(None, "$unset", False)],
    }
    (row, *_) = views.person_history(store, store.person("u")["id"])["plan"]
    assert (row["uuid"], row["event"], row["timestamp"], row["distinct_id"]) == (
        first["uuid"], "$set", "2024-01-10T10:00:00+00:00", "u")  # fmt: skip


def test_a_merge_brings_the_other_persons_history_and_says_where_the_targets_value_won(local, store):
    post(local, [ev("$set", "anon", **{"$set": {"plan": "free", "referrer": "google", "same": 1}})])
    post(local, [ev("$set", "user", **{"$set": {"plan": "pro", "email": "a@b.c", "same": 1}})])
    alias = ev("$create_alias", "anon", properties={"alias": "user"})
    post(local, [alias])
    history = changes(store, "user")
    assert history["referrer"] == [("google", "$set", True)] and history["email"] == [("a@b.c", "$set", True)]
    assert history["plan"] == [("free", "$set", True), ("pro", "$set", True), ("free", "merge", True)]
    assert history["same"] == [(1, "$set", True), (1, "$set", True)]  # no conflict, no merge row
    merge = views.person_history(store, store.person("user")["id"])["plan"][-1]
    assert (merge["uuid"], merge["event"]) == (alias["uuid"], "$create_alias")
    text = page_text(get(local, "person", "user"))
    assert "merge ($create_alias: this person's value kept)" in text


def test_a_long_history_shows_its_latest_changes_and_counts_the_rest(local):
    post(local, [ev("$set", "u", **{"$set": {"n": i}}) for i in range(30)])
    text = page_text(get(local, "person", "u"))
    assert "n 5 earlier change(s) not shown 5 $set replaced later" in text and "29 $set current value" in text


def test_group_history_and_members(local, store):
    group = {"$group_type": "company", "$group_key": "acme"}
    post(local, [ev("$groupidentify", "admin", properties={**group, "$group_set": {"name": "Acme", "size": 10}})])
    post(local, [ev("$groupidentify", "admin", properties={**group, "$group_set": {"size": 12}})])
    post(local, [ev("used", "member", properties={"$groups": {"company": "acme"}})])
    history = views.group_history(store, PROJECT, "company", "acme")
    assert [(c["value"], c["operation"]) for c in history["size"]] == [(10, "$group_set"), (12, "$group_set")]
    members = views.group_members(store, PROJECT, "company", "acme")
    assert [(m["distinct_id"], m["events"]) for m in members] == [("admin", 2), ("member", 1)]
    assert views.person_groups(store, store.person("member")["id"]) == [("company", "acme")]
    assert views.person_groups(store, store.person("admin")["id"]) == [("company", "acme")]
    text = page_text(get(local, "groups", "company", "acme"))
    assert "size 10 $group_set replaced later" in text


def test_a_project_forgotten_by_the_demo_loses_its_history_too(local, store):
    post(local, [ev("$set", "u", **{"$set": {"a": 1}})])
    store.clear_project(PROJECT)
    assert store.query("SELECT count(*) FROM property_changes")[0][0] == 0


# --- answers ------------------------------------------------------------------------------------


PAGES = [(), ("projects",), ("persons",), ("person", "u"), ("groups",), ("groups", "company", "acme"), ("events",),
         ("exceptions",), ("feature_flags",), ("feature_flags", "beta")]  # fmt: skip


@pytest.mark.parametrize("path", PAGES)
def test_every_page_answers_html_with_a_strict_content_security_policy(local, path):
    post(local, [ev("used", "u", properties={"$groups": {"company": "acme"}})])
    post(local, [ev("$groupidentify", "u", properties={"$group_type": "company", "$group_key": "acme"})])
    answer = get(local, *path)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "text/html; charset=utf-8"
    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert (
        "<script>" not in answer.text
        and " style=" not in answer.text
        and " on" not in re.sub(r">[^<]*<", "><", answer.text)
    )


def test_pages_answer_only_a_loopback_host(local):
    refused = requests.get(local.url + "/persons", headers={"Host": "attacker.example"}, timeout=5)
    assert refused.status_code == 403 and "127.0.0.1" in refused.text
    assert requests.get(local.url + "/persons", headers={"Host": "localhost:1234"}, timeout=5).status_code == 200


def test_the_capture_api_is_left_as_it_was(local):
    assert get(local, "batch").json()["status"] == "ok"  # not a page: the API's answer
    assert get(local, "persons", "x", "y").status_code == 404  # under a page: the pages' 404
    assert get(local, "static", "ui.js").headers["Content-Type"].startswith("text/javascript")


def test_a_key_in_the_address_is_replaced_by_its_project_id(local):
    post(local, [ev("e", "u")])
    answer = get(local, "person", "u", project=KEY)
    assert answer.status_code == 303 and answer.headers["Location"] == href("person", "u", project=PROJECT)
    assert KEY not in answer.text and KEY not in answer.headers["Location"]


def test_with_several_projects_a_page_asks_which_one(local):
    post(local, [ev("e", "mine")])
    post(local, [ev("e", "theirs")], api_key="phc_another_project_key_0123")
    choose = page_text(get(local, "persons"))
    assert "Choose a project" in choose and PROJECT in choose and project_of("phc_another_project_key_0123") in choose
    mine = page_text(get(local, "persons", project=PROJECT))
    assert "mine" in mine and "theirs" not in mine


def test_the_live_tails_feed_gives_the_events_after_the_last_one_shown(local, store):
    post(local, [ev("a", "u"), ev("b", "u"), ev("a", "v")])
    last = store.events()[0]["seq"]
    feed = get(local, "events", "feed", project=PROJECT, after=last).json()
    assert feed["after"] == last + 2 and [
        re.findall(r">(a|b)</a>", row) for row in feed["rows"].split("</tr>")[:2]
    ] == [["a"], ["b"]]
    only = get(local, "events", "feed", project=PROJECT, after=0, event="a", distinct_id="v").json()
    assert only["rows"].count("<tr>") == 1 and ">v</a>" in only["rows"]
    assert get(local, "events", "feed", project=PROJECT, after=last + 2).json() == {"after": last + 2, "rows": ""}
    assert get(local, "events", "feed", project=PROJECT, after="nonsense").status_code == 200


def test_persons_are_found_by_id_or_property(local):
    post(local, [ev("$set", "jane", **{"$set": {"email": "jane@example.com", "city": "Zürich"}}), ev("e", "john")])
    assert "jane" in page_text(get(local, "persons", q="ZÜRICH")) and "john" not in page_text(
        get(local, "persons", q="zür")
    )
    assert "john" in page_text(get(local, "persons", q="JOH"))


# --- exceptions: PostHog's own $exception events ----------------------------------------------------


def test_exceptions_from_posthogs_sdk_are_grouped_by_type_and_top_frame(local, store):
    posthog = pytest.importorskip("posthog")  # the oracle: its SDK's capture_exception, its payload
    client = posthog.Posthog(KEY, host=local.url, sync_mode=True, disable_geoip=True)

    def checkout(cart):
        return cart["total"]

    def capture(cart, who):
        try:
            checkout(cart)
        except KeyError as error:
            client.capture_exception(error, distinct_id=who)

    capture({}, "u1")
    capture({}, "u2")
    try:
        raise ValueError("<b>bad</b> total")
    except ValueError as error:
        client.capture_exception(error, distinct_id="u1")
    client.shutdown()
    events = store.events(event="$exception")
    assert len(events) == 3
    issues = {issue_of(e["properties"]).fingerprint for e in events}
    assert len(issues) == 2
    compact = page_text(get(local, "exceptions"))
    assert "KeyError 'total' checkout in tests/test_local_ui.py:" in compact and " 2 2 " in compact  # 2 events, 2 ids
    assert "ValueError <b>bad</b> total" in compact
    key_error = issue_of(events[0]["properties"]).fingerprint
    detail = page_text(get(local, "exceptions", key_error))
    assert 'return cart["total"]' in detail and "capture in tests/test_local_ui.py" in detail
    event_page = page_text(get(local, "events", events[0]["uuid"]))
    assert "$exception_list" in event_page


@pytest.mark.parametrize(
    "properties",
    [
        {"$exception_list": "not a list"},
        {"$exception_list": ["text", 1, None]},
        {"$exception_list": [{"type": {"nested": True}, "stacktrace": "no"}]},
        {"$exception_list": [{"stacktrace": {"frames": ["x", {"lineno": [1]}]}}]},
        {"$exception_type": "OldSdkError", "$exception_message": "from before the list"},
        {},
    ],
)
def test_exceptions_of_any_shape_are_shown(local, properties):
    post(local, [ev("$exception", "u", properties=properties)])
    assert get(local, "exceptions").status_code == 200
    fingerprint = issue_of(properties).fingerprint
    assert get(local, "exceptions", fingerprint).status_code == 200


# --- flags --------------------------------------------------------------------------------------


def test_flag_explain_prints_what_the_command_prints(local, tmp_path):
    definitions = tmp_path / "flags.json"
    definitions.write_text(json.dumps(DEFINITIONS))
    out = io.StringIO()
    argv = ["flags", "explain", "company-tools", "u1", "--prop", "plan=pro", "--group", "company=acme",
            "--group-prop", "company.size=500", "--definitions", str(definitions)]  # fmt: skip
    assert cli.main(argv, out=out, err=out) == 0
    form = {"distinct_id": "u1", "prop": "plan=pro", "group": "company=acme", "group_prop": "company.size=500",
            "stored": "ignore"}  # fmt: skip
    shown = re.search(r"<pre>(.*)</pre>", get(local, "feature_flags", "company-tools", **form).text, re.S)
    assert html.unescape(shown.group(1)) == out.getvalue()


def test_flag_explain_uses_the_stored_properties_under_the_typed_ones(local):
    post(local, [ev("$set", "u1", **{"$set": {"plan": "enterprise"}})])
    stored = page_text(get(local, "feature_flags", "beta", distinct_id="u1", project=PROJECT))
    assert "beta for u1: true" in stored
    typed = page_text(get(local, "feature_flags", "beta", distinct_id="u1", prop="plan=free", project=PROJECT))
    assert "beta for u1: false" in typed
    mistake = page_text(get(local, "feature_flags", "beta", distinct_id="u1", group_prop="size=1"))
    assert "write TYPE.NAME=VALUE" in mistake
    assert get(local, "feature_flags", "nope").status_code == 404


def test_without_flags_the_page_says_how_to_serve_them(store):
    with LocalServer(store) as bare:
        assert "--flags" in page_text(requests.get(bare.url + "/feature_flags", timeout=5))


# --- escaping, by construction ----------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags, self.text = [], ""

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text += data


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_is_shown_as_that_text_and_never_as_markup(text):
    for markup, css in ((value(text), "str"), (fill('<td title="%s">%s</td>', text, text), None)):
        parser = _Tags()
        parser.feed(markup)
        parser.close()
        tags = [tag for tag, _ in parser.tags]
        assert tags == (["span"] if css else ["td"])
        if css is None:
            assert dict(parser.tags[0][1])["title"] == text
        assert parser.text in (text, text[:2000])  # values past 2000 characters are cut, and say so
    assert html.unescape(esc(text)) == text and not set("<>\"'") & set(esc(text))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1), min_size=1, max_size=3), st.text())
def test_links_keep_every_segment_whole_and_stay_on_this_server(segments, query):
    link = href(*segments, q=query)
    path, _, _ = link.partition("?")
    assert link.startswith("/") and not link.startswith("//")
    assert [unquote(s) for s in path[1:].split("/")] == segments


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12))  # fmt: skip
def test_pages_answer_whatever_the_properties_hold(local, data):
    event = ev("$exception", "u", properties={"$exception_list": data, "$set": {"k": data}})
    post(local, [event])
    for path in (
        ("person", "u"),
        ("exceptions",),
        ("events", event["uuid"]),
        ("exceptions", issue_of(event["properties"]).fingerprint),
    ):
        assert get(local, *path, project=PROJECT).status_code == 200, path


# --- the demo's last line ----------------------------------------------------------------------------


def test_the_demo_ends_with_its_persons_address(tmp_path):
    out = io.StringIO()
    assert cli.main(["demo", "--db", str(tmp_path / "demo.sqlite3")], out=out, err=out) == 0
    last = out.getvalue().rstrip().splitlines()[-1]
    assert last == "http://127.0.0.1:8010" + href(
        "person", "demo-user-456", project=project_of("phc_local_demo_project_key")
    )
    assert "posthog-otel server --db " in out.getvalue().rstrip().splitlines()[-2]


def test_the_demo_refuses_to_serve_pages_when_it_sends_to_posthog(monkeypatch):
    monkeypatch.setenv("POSTHOG_API_KEY", KEY)
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["demo", "--serve"], out=out, err=err) == 1
    assert err.getvalue().count("\n") == 1 and "POSTHOG_API_KEY is set" in err.getvalue()


def test_lone_surrogates_and_huge_numbers_from_a_raw_client_are_shown(local):
    # "\ud800" is not Unicode text: the capture endpoint refuses it (400, as PostHog's: issue 22), but
    # a database written before that may hold it in a property, and the pages must still show it.
    event = ev(
        "$exception", "u", **{"$set": {"k\ud801": "v\udc00"}}, properties={"$exception_list": [{"type": "\ud800"}]}
    )
    assert (
        requests.post(local.url + "/batch/", data=json.dumps({"api_key": KEY, "batch": [event]}), timeout=5).status_code
        == 400
    )
    local.store.ingest(KEY, [event])
    for path in (("person", "u"), ("persons",), ("events",), ("events", "feed"), ("exceptions",),
                 ("events", event["uuid"]), ("exceptions", issue_of(event["properties"]).fingerprint)):  # fmt: skip
        assert get(local, *path, project=PROJECT).status_code == 200, path
    assert "k\\ud801" in get(local, "person", "u", project=PROJECT).text  # shown as its escape
    assert get(local, "events", "feed", project=PROJECT, after=10**30).json()["rows"] == ""
