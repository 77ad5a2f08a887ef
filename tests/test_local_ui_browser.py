"""The local server's pages in a real browser (headless Chromium), filled by the real pipeline.

What a person sees: the demo's printed URL showing its person with both ids merged, the
``set_once`` that kept its first value, its company and its events; an event arriving in
the live tail; attacker-controlled text shown as text; the pages and forms without
JavaScript. Skipped, with one line, where Chromium or Selenium is missing.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import uuid

import pytest
import requests

import posthog_otel
from posthog_otel._local import demo
from posthog_otel._local.server import LocalServer
from posthog_otel._local.store import Store, project_of

from .browser_support import chromium, missing, submit, text_of, texts_of, wait_for
from .support import child_env
from .test_flags import DEFINITIONS

pytestmark = pytest.mark.xdist_group("browser")  # one Chromium for the module, on one worker
if missing():
    pytest.skip("browser tests skipped: %s" % missing(), allow_module_level=True)  # one line, not one per test

BIN = os.path.dirname(sys.executable)
KEY = "phc_browser_test_key_0123456789"
HOSTILE = (
    "<script>window.pwned = 'script'</script><img src=x onerror=\"window.pwned = 'img'\">"
    "\"'><svg onload=\"window.pwned = 'svg'\"></svg>"
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(str(tmp_path_factory.mktemp("chromium")))
    yield driver
    driver.quit()


@pytest.fixture
def local(tmp_path):
    store = Store(tmp_path / "ui.sqlite3")
    with LocalServer(store, flags=DEFINITIONS) as server:
        yield server
    store.close()


@pytest.fixture
def pipeline(local, provider):
    return posthog_otel.configure(api_key=KEY, host=local.url, logger_provider=provider, schedule_delay_millis=50)


def page(local, *path, **query):
    from posthog_otel._local.ui_markup import href

    return local.url + href(*path, project=project_of(KEY), **query)


def assert_inert(driver):
    """Nothing the data said ran or became an element: the only script is ours."""
    assert driver.execute_script("return window.pwned === undefined"), driver.execute_script("return window.pwned")
    scripts = driver.execute_script("return Array.from(document.scripts).map(s => s.src)")
    assert [s.rsplit("/", 1)[-1] for s in scripts] == ["ui.js"]
    assert driver.execute_script("return document.querySelectorAll('main img, main svg').length") == 0


# --- the demo: what a newcomer sees ---------------------------------------------------------------


def test_the_demos_url_shows_its_person_merged_with_first_set_once_value_company_and_events(browser, tmp_path):
    process = subprocess.Popen(
        [os.path.join(BIN, "posthog-otel"), "demo", "--serve", "--db", str(tmp_path / "demo.sqlite3")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # Ctrl-C, even under a runner ignoring it
    )  # fmt: skip
    said = _Output(process)
    try:
        url = said.url()
        browser.get(url)
        assert text_of(browser, "h1") == demo.USER
        assert texts_of(browser, "ul.ids li a")[:2] == [demo.ANONYMOUS, demo.USER]  # both ids, one person
        rows = _property_rows(browser)
        assert rows["first_visit"] == [("2024-01-10", "$set_once", "current value"),
                                       ("2099-01-01", "$set_once", "not applied: already set")]  # fmt: skip
        assert rows["plan"] == [("free", "$set", "replaced later"), ("premium", "$set", "current value")]
        assert "Paris" in rows["address.city"][0][0] and "callback" not in rows
        events = texts_of(browser, "table.events td:nth-child(2)")
        assert {"page_viewed", "$create_alias", "feature_used", "dashboard_viewed"} <= set(events)
        submit(browser, "a[href^='/groups/company/acme_corp']")
        assert text_of(browser, "h1") == "company acme_corp"
        assert _property_rows(browser)["employees"][-1] == ("275", "$group_set", "current value")
        assert texts_of(browser, "section:nth-of-type(2) td:first-child") == [demo.USER]  # its member
        assert_inert(browser)
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        process.wait(timeout=30)
    assert process.returncode == 0 and said.all().rstrip().endswith("stopped"), said.all()


class _Output:
    """A process's output, read as it comes (so waiting for a line cannot hang the test)."""

    def __init__(self, process):
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.seen = []
        self._reader = threading.Thread(target=lambda: [self.lines.put(line) for line in process.stdout], daemon=True)
        self._reader.start()

    def url(self):
        """The demo's last line: its person's address."""
        while True:
            line = self.lines.get(timeout=60)
            self.seen.append(line)
            if line.startswith("http://"):
                return line.strip()

    def all(self):
        self._reader.join(timeout=30)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


def _property_rows(driver):
    """{key: [(value, operation, outcome), ...]} as the properties table shows them."""
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('table.properties tbody tr'))"
        ".map(tr => Array.from(tr.cells).slice(0, 4).map(td => td.innerText.trim()))"
    )
    shown, key = {}, None
    for name, value, operation, outcome in rows:
        key = name or key
        shown.setdefault(key, []).append((value, operation, outcome))
    return shown


# --- the live tail ---------------------------------------------------------------------------------


def test_an_event_arrives_in_the_live_tail_as_it_is_delivered(browser, local, pipeline):
    posthog_otel.capture("early", "before_the_page")
    assert pipeline.flush()
    browser.get(page(local, "events"))
    wait_for(browser, lambda d: "Live:" in text_of(d, "#tail-status"))
    posthog_otel.capture("visitor", "arrived_live", {"page": HOSTILE})
    assert pipeline.flush()
    wait_for(browser, lambda d: "arrived_live" in texts_of(d, "#tail tr td:nth-child(2)"))
    first = texts_of(browser, "#tail tr")[0]
    assert "arrived_live" in first and "visitor" in first and HOSTILE in first  # at the top, shown as text
    assert texts_of(browser, "#tail tr td:nth-child(2)").count("before_the_page") == 1  # not repeated
    assert_inert(browser)


def test_the_live_tail_keeps_the_pages_filter(browser, local, pipeline):
    browser.get(page(local, "events", event="wanted"))
    wait_for(browser, lambda d: "Live:" in text_of(d, "#tail-status"))
    posthog_otel.capture("someone", "unwanted")
    posthog_otel.capture("someone", "wanted")
    assert pipeline.flush()
    wait_for(browser, lambda d: "wanted" in texts_of(d, "#tail tr td:nth-child(2)"))
    assert texts_of(browser, "#tail tr td:nth-child(2)") == ["wanted"]  # unwanted came first, and was left out


# --- attacker-controlled text ----------------------------------------------------------------------


def test_attacker_controlled_values_are_shown_as_text_on_every_page(browser, local, pipeline):
    posthog_otel.capture(HOSTILE, "signup", {"referrer": HOSTILE})
    posthog_otel.set(HOSTILE, {HOSTILE: HOSTILE, "name": HOSTILE})
    posthog_otel.group_identify("company", HOSTILE, {"name": HOSTILE}, distinct_id=HOSTILE)
    posthog_otel.capture(HOSTILE, HOSTILE, groups={"company": HOSTILE})
    assert pipeline.flush()
    exception = _hostile_exception()
    requests.post(local.url + "/batch/", json={"api_key": KEY, "batch": [exception]}, timeout=5).raise_for_status()
    from posthog_otel._local.ui_exceptions import issue_of

    issue = issue_of(exception["properties"]).fingerprint
    pages = [
        page(local), page(local, "persons"), page(local, "persons", q=HOSTILE), page(local, "person", HOSTILE),
        page(local, "groups"), page(local, "groups", "company", HOSTILE), page(local, "events"),
        page(local, "events", event=HOSTILE), page(local, "events", exception["uuid"]), page(local, "exceptions"),
        page(local, "exceptions", issue),
    ]  # fmt: skip
    for url in pages:
        browser.get(url)
        assert HOSTILE in browser.find_element("css selector", "main").text, url
        assert_inert(browser)


def _hostile_exception():
    frame = {"filename": HOSTILE, "function": HOSTILE, "lineno": HOSTILE, "context_line": HOSTILE, "in_app": True}
    return {
        "event": "$exception", "distinct_id": HOSTILE, "uuid": str(uuid.uuid4()),
        "properties": {"$exception_list": [{"type": HOSTILE, "value": HOSTILE, "mechanism": {"handled": HOSTILE},
                                            "stacktrace": {"frames": [frame]}}]},
    }  # fmt: skip


# --- without JavaScript ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_without_javascript(tmp_path_factory):
    driver = chromium(str(tmp_path_factory.mktemp("chromium-nojs")), javascript=False)
    yield driver
    driver.quit()


def test_pages_and_forms_work_without_javascript(browser_without_javascript, local, pipeline):
    browser = browser_without_javascript
    posthog_otel.capture("anon-1", "page_viewed")
    posthog_otel.alias("anon-1", "user-1")
    posthog_otel.set("user-1", {"plan": "enterprise"})
    posthog_otel.capture("user-1", "checkout")
    assert pipeline.flush()
    browser.get(page(local, "person", "user-1"))
    assert texts_of(browser, "ul.ids li a") == ["anon-1", "user-1"]
    from selenium.webdriver.common.by import By

    browser.get(page(local, "events"))
    assert "reload" in text_of(browser, "#tail-status")  # the script did not run: it says so
    browser.find_element(By.NAME, "event").send_keys("checkout")
    submit(browser, "form.filters button")
    assert texts_of(browser, "#tail tr td:nth-child(2)") == ["checkout"]
    browser.get(page(local, "feature_flags", "beta"))
    browser.find_element(By.NAME, "distinct_id").send_keys("user-1")
    submit(browser, "form.explain button")
    answer = text_of(browser, "main pre")
    assert answer.startswith("beta for user-1: true (decided locally)")  # plan=enterprise, stored
    assert "plan exact ['enterprise']: 'enterprise' -> match" in answer
