"""``posthog-otel demo``: a user and group story through a real OTel pipeline, end to end.

Without ``POSTHOG_API_KEY`` it starts the local server in-process, under a project of
its own that each run starts afresh, prints the persons and groups PostHog would hold
after this run, and ends with the address of the demo person's page; with ``serve`` it
keeps serving that page until Ctrl-C.  With a key it sends the same story to that PostHog.
"""

from __future__ import annotations

import logging
import os
import shlex
import time
from typing import Any, Callable, List, Optional, TextIO, Tuple

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource

import posthog_otel as posthog

from .._config import Settings
from .render import groups_table, persons_table
from .server import LocalServer
from .store import Store, project_of
from .ui_markup import href

ANONYMOUS = "demo-anonymous-abc123"
USER = "demo-user-456"
LOCAL_KEY = "phc_local_demo_project_key"


def scenario() -> List[Tuple[str, Callable[[], Any]]]:
    """A user and group management story, step by step (the README's calls)."""

    def anonymous_visitor() -> None:
        posthog.capture(ANONYMOUS, "page_viewed", {"page": "landing"})
        posthog.capture(ANONYMOUS, "signup_started")

    def signup() -> None:
        posthog.capture(USER, "signup_completed", {"email": "user@example.com"})

    def link() -> None:
        posthog.alias(ANONYMOUS, USER)

    def person_properties() -> None:
        posthog.set(USER, {"email": "user@example.com", "name": "Jane Doe", "plan": "free", "verified": True})
        posthog.set_once(USER, {"first_visit": "2024-01-10", "initial_referrer": "google.com"})
        posthog.set_once(USER, {"first_visit": "2099-01-01"})  # ignored: already set

    def groups() -> None:
        posthog.group_identify(
            "company",
            "acme_corp",
            {"name": "Acme Corporation", "industry": "Technology", "employees": 250},
            distinct_id=USER,
        )
        posthog.group_identify(
            "team", "engineering", {"name": "Engineering Team", "members_count": 12}, distinct_id=USER
        )
        posthog.group_identify("company", "acme_corp", {"employees": 275}, distinct_id=USER)

    def grouped_event() -> None:
        posthog.capture(
            USER,
            "feature_used",
            {"feature": "advanced_dashboard"},
            groups={"company": "acme_corp", "team": "engineering"},
        )

    def request_context() -> None:
        with posthog.new_context():
            posthog.identify_context(USER)
            posthog.tag("ab_test_group", "variant_b")
            posthog.set({"plan": "premium", "last_login": "2024-09-07T10:30:00Z"})
            posthog.capture("dashboard_viewed")

    def bad_input() -> None:
        posthog.set(USER, {"valid_number": 42, "callback": lambda x: x, "address": {"city": "Paris"}})

    return [
        ("An anonymous visitor browses (capture)", anonymous_visitor),
        ("They sign up (capture with the new id)", signup),
        ("Link the anonymous id to the user (alias)", link),
        ("Person properties (set, set_once)", person_properties),
        ("Company and team (group_identify)", groups),
        ("An event attached to both groups (capture groups=...)", grouped_event),
        ("A request context: identify_context + tag, then set and capture", request_context),
        ("Bad input: an unserializable value is dropped, a nested map flattened", bad_input),
    ]


class DemoError(Exception):
    """The demo cannot run as asked; the message says why."""


def run(out: TextIO, db_path: Optional[str] = None, environ: Any = None, serve: bool = False) -> int:
    environ = os.environ if environ is None else environ
    remote_key = environ.get("POSTHOG_API_KEY") or environ.get("POSTHOG_PROJECT_API_KEY")
    server: Optional[LocalServer] = None
    if remote_key and serve:
        raise DemoError("--serve shows the local server's pages, but POSTHOG_API_KEY is set: the demo sends to PostHog")
    if remote_key:
        settings = Settings.resolve(environ=environ)
        api_key, host = remote_key, settings.host
        out.write("POSTHOG_API_KEY is set: sending the demo to %s\n\n" % host)
    else:
        store = Store(db_path)
        store.clear_project(project_of(LOCAL_KEY))  # what this run produces, nothing older
        server = LocalServer(store).start()
        api_key, host = LOCAL_KEY, server.url
        out.write("No POSTHOG_API_KEY: using the embedded local PostHog at %s\n" % host)
        out.write("(database: %s)\n\n" % store.path)
    warnings = _ShowWarnings(out)
    logging.getLogger("posthog_otel").addHandler(warnings)
    provider = LoggerProvider(resource=Resource.create({"service.name": "posthog-otel-demo"}), shutdown_on_exit=False)
    drops = {}
    try:
        pipeline = posthog.configure(api_key=api_key, host=host, logger_provider=provider, schedule_delay_millis=200)
        steps = scenario()
        for number, (title, step) in enumerate(steps, 1):
            out.write("[%d/%d] %s\n" % (number, len(steps), title))
            step()
        out.write("\nDelivering through the OpenTelemetry batch processor... ")
        out.flush()
        started = time.monotonic()
        delivered = pipeline.flush()
        out.write("%s in %.2f s\n" % ("done" if delivered else "FAILED", time.monotonic() - started))
        pipeline.shutdown()
        drops = {k: v for k, v in posthog.drop_counts().items() if k != "invalid_property"}
        if drops:
            out.write("Not delivered: %s\n" % ", ".join("%s=%d" % kv for kv in sorted(drops.items())))
    finally:
        logging.getLogger("posthog_otel").removeHandler(warnings)
        provider.shutdown()
    if server is None:
        out.write("\nLook for %s in %s/persons and for acme_corp under Groups.\n" % (USER, _app_url(host)))
        return 1 if drops else 0
    project = project_of(LOCAL_KEY)
    out.write(
        "\nWhat PostHog would hold now:\n\nPersons\n%s\n\nGroups\n%s\n"
        % (_indent(persons_table(server.store.persons(project))), _indent(groups_table(server.store.groups(project))))
    )
    options = " --key %s%s" % (LOCAL_KEY, " --db %s" % shlex.quote(db_path) if db_path else "")
    out.write(
        "\nKeep exploring: posthog-otel person %s%s   (also: persons, groups, events)\n"
        "Run your own app against a local PostHog: posthog-otel server, then\n"
        "  POSTHOG_HOST=http://127.0.0.1:8010 POSTHOG_API_KEY=phc_anything python app.py\n" % (USER, options)
    )
    page = href("person", USER, project=project)
    if serve:
        out.write("\nSee the demo person in your browser (Ctrl-C stops):\n%s%s\n" % (server.url, page))
        _serve_until_interrupted(out)
    else:
        db = " --db %s" % shlex.quote(db_path) if db_path else ""
        out.write(
            "\nSee the demo person in your browser: run posthog-otel server%s, then open\n"
            "http://127.0.0.1:8010%s\n" % (db, page)
        )
    server.stop()
    server.store.close()
    return 1 if drops else 0


def _serve_until_interrupted(out: TextIO) -> None:
    out.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        out.write("stopped\n")


class _ShowWarnings(logging.Handler):
    """Shows the package's warnings inline under the step that caused them."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(logging.WARNING)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        self.out.write("      warning: %s\n" % record.getMessage().replace("posthog_otel: ", ""))


def _app_url(host: str) -> str:
    return {
        "https://us.i.posthog.com": "https://us.posthog.com",
        "https://eu.i.posthog.com": "https://eu.posthog.com",
    }.get(host, host)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
