"""posthog_otel.testing: the fixture users put in their own test suites."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import posthog_otel as posthog
from posthog_otel.testing import LocalPostHog

from .support import child_env


def test_fixture_delivers_and_exposes_person_and_group_state(posthog_local):
    posthog.capture("anon", "page_viewed")
    posthog.alias("anon", "user-42")
    posthog.set("user-42", {"email": "jane@example.com"})
    posthog.group_identify("company", "acme", {"name": "Acme"}, distinct_id="user-42")

    person = posthog_local.person("anon")
    assert person["distinct_ids"] == ["anon", "user-42"]
    assert person["properties"] == {"email": "jane@example.com"}
    assert posthog_local.group("company", "acme")["properties"] == {"name": "Acme"}
    assert [e["event"] for e in posthog_local.events] == ["page_viewed", "$create_alias", "$set", "$groupidentify"]


def test_code_that_configures_itself_stays_local(posthog_local):
    assert os.environ["POSTHOG_HOST"] == posthog_local.url
    posthog.configure()  # as an application's start-up code would
    posthog.set("u", {"a": 1})
    assert posthog_local.person("u")["properties"] == {"a": 1}


def test_context_manager_outside_pytest(tmp_path):
    with LocalPostHog(tmp_path / "db.sqlite3") as local:
        posthog.set("u", {"a": 1})
        assert len(local.persons()) == 1
    assert "POSTHOG_HOST" not in os.environ


def test_plugin_is_registered_for_users_test_suites_and_the_example_passes():
    """examples/test_signup_example.py, run the way a user runs their suite."""
    example = pathlib.Path(__file__).resolve().parent.parent / "examples" / "test_signup_example.py"
    env = child_env()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(example)],
        capture_output=True, text=True, timeout=60, cwd=example.parent, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_documented_form_works_after_a_plain_import_and_costs_nothing_until_used(tmp_path):
    """README: ``with posthog_otel.testing.LocalPostHog() as local:``, outside pytest."""
    script = (
        "import sys\n"
        "import posthog_otel\n"
        "heavy = [m for m in ('sqlite3', 'pytest', 'posthog_otel.testing') if m in sys.modules]\n"
        "assert heavy == [], heavy\n"
        "with posthog_otel.testing.LocalPostHog() as local:\n"
        "    posthog_otel.set('u', {'a': 1})\n"
        "    assert local.person('u')['properties'] == {'a': 1}\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=child_env(), cwd=str(tmp_path)
    )
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr
