"""``posthog-otel flags`` and ``posthog-otel flags explain``."""

from __future__ import annotations

import io
import json

import pytest

from posthog_otel import cli
from posthog_otel._local.server import LocalServer
from posthog_otel._local.store import Store

from .conftest import API_KEY
from .test_flags import DEFINITIONS, PERSONAL_KEY


def run(*argv):
    """(exit status, what was said: standard output, or standard error after a mistake)."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue() if code == 0 else err.getvalue()


@pytest.fixture
def definitions_file(tmp_path):
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(DEFINITIONS))
    return str(path)


def test_flags_lists_every_flag_with_its_audience_conditions_and_variants(definitions_file):
    code, text = run("flags", "--definitions", definitions_file)
    assert code == 0
    header, beta, checkout, tools, footer = text.strip().splitlines()
    assert header.split() == ["FLAG", "ACTIVE", "FOR", "CONDITIONS", "VARIANTS"]
    assert beta.split()[:3] == ["beta", "yes", "persons"] and "plan exact ['enterprise'] @ 100%" in beta
    assert "control 0%, test 100%" in checkout and "everyone @ 100%" in checkout
    assert tools.split()[:3] == ["company-tools", "yes", "company"] and "size gt 100" in tools
    assert footer == "3 flags"


def test_flags_json_prints_the_definitions(definitions_file):
    code, text = run("flags", "--definitions", definitions_file, "--json")
    assert code == 0 and json.loads(text)["flags"] == DEFINITIONS["flags"]


def test_explain_says_which_condition_matched_and_the_buckets(definitions_file):
    code, text = run(
        "flags", "explain", "beta", "user-1", "--prop", "plan=enterprise", "--definitions", definitions_file
    )
    assert code == 0
    lines = text.splitlines()
    assert lines[0] == "beta for user-1: true (decided locally)"
    assert "  person properties: plan='enterprise', distinct_id='user-1'" in lines
    assert "    plan exact ['enterprise']: 'enterprise' -> match" in lines
    assert any(line.startswith("    rollout bucket ") and "inside the 100% rollout" in line for line in lines)


def test_explain_says_which_property_failed(definitions_file):
    code, text = run("flags", "--definitions", definitions_file, "explain", "beta", "user-1", "--prop", "plan=free")
    assert code == 0
    assert text.startswith("beta for user-1: false (decided locally)")
    assert "    plan exact ['enterprise']: 'free' -> no match\n" in text and "  no condition matched: false\n" in text


def test_explain_says_what_is_missing(definitions_file):
    code, text = run("flags", "explain", "beta", "user-1", "--definitions", definitions_file)
    assert code == 0
    assert (
        "not decidable locally (missing_context): no condition matched, and condition 1: property 'plan' was not given"
        in text
    )


def test_explain_a_group_flag(definitions_file):
    code, text = run("flags", "explain", "company-tools", "user-1", "--group", "company=acme",
                     "--group-prop", "company.size=500", "--definitions", definitions_file)  # fmt: skip
    assert code == 0
    assert text.startswith("company-tools for user-1: true (decided locally)")
    assert "  company acme: $group_key='acme', size='500'" in text
    assert "a company flag: evaluated for company 'acme'" in text and "size gt 100: '500' -> match" in text


def test_explain_a_variant_shows_the_variant_bucket(definitions_file):
    code, text = run("flags", "explain", "checkout", "user-1", "--definitions", definitions_file)
    assert code == 0 and text.startswith('checkout for user-1: "test" (decided locally)')
    assert "match: variant 'test' (variant bucket " in text


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["flags", "explain", "nope", "u1"],
            "No flag 'nope' in the definitions (flags: beta, checkout, company-tools).",
        ),
        (["flags", "explain", "beta", "u1", "--prop", "plan"], "--prop 'plan': write NAME=VALUE"),
        (["flags", "explain", "beta", "u1", "--group-prop", "size=5"], "write TYPE.NAME=VALUE"),
        (["flags", "explain", "beta", "u1", "--group-prop", "company.size=5"], "without --group company=KEY"),
    ],
)
def test_explain_mistakes_are_explained(definitions_file, argv, message):
    code, text = run(*argv, "--definitions", definitions_file)
    assert code == 1 and message in text


def test_without_definitions_it_says_how_to_get_them():
    code, text = run("flags")
    assert code == 1 and "pass --definitions FILE, or set POSTHOG_API_KEY and POSTHOG_PERSONAL_API_KEY" in text


def test_a_missing_file_is_a_clear_error(tmp_path):
    code, text = run("flags", "--definitions", str(tmp_path / "nope.json"))
    assert code == 1 and "cannot read flag definitions" in text and "nope.json" in text


def test_definitions_are_read_from_the_configured_posthog(tmp_path, monkeypatch):
    store = Store(tmp_path / "db.sqlite3")
    with LocalServer(store, flags={"on": True, "variant": "b"}) as server:
        monkeypatch.setenv("POSTHOG_HOST", server.url)
        monkeypatch.setenv("POSTHOG_API_KEY", API_KEY)
        monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", PERSONAL_KEY)
        code, text = run("flags")
        assert code == 0 and text.splitlines()[1].split()[:2] == ["on", "yes"]
        code, text = run("flags", "explain", "variant", "user-1")
        assert code == 0 and text.startswith('variant for user-1: "b" (decided locally)')
    store.close()
