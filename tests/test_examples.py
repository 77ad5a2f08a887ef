"""The seed's usage examples (examples/*.py) run as written against a loopback PostHog."""

from __future__ import annotations

import pathlib
import sys

import pytest

from .conftest import API_KEY
from .test_autoconfigure import run

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(server, name):
    """An example as shipped, run the way its first lines say (the environment points it here)."""
    result = run([sys.executable, str(EXAMPLES / name)], POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url)
    assert result.returncode == 0, result.stderr
    return server.events, result.stderr


def test_user_properties_runs_literally_with_posthog_api_key_assignment(server):
    """`posthog.api_key = '...'` configures the pipeline; POSTHOG_HOST points it here."""
    events, _ = run_example(server, "user_properties.py")
    assert [(e["event"], e["distinct_id"]) for e in events] == [
        ("$set", "user123"),
        ("$set_once", "user123"),
        ("$set", "user123"),
    ]
    assert events[2]["$set"] == {"last_active": "2024-09-07", "feature_usage_count": 42}
    assert {r.payload["api_key"] for r in server.requests} == {"phc_your_project_api_key"}


def test_group_management(server):
    events, _ = run_example(server, "group_management.py")
    groups = [(e["properties"]["$group_type"], e["properties"]["$group_key"]) for e in events]
    assert groups == [("company", "acme_corp"), ("team", "engineering"), ("company", "acme_corp")]
    assert events[2]["properties"]["$group_set"] == {"mrr": 5500, "employees": 275}


def test_identity_linking(server):
    events, _ = run_example(server, "identity_linking.py")
    assert [(e["event"], e["distinct_id"]) for e in events] == [
        ("page_viewed", "anonymous_user_abc123"),
        ("signup_started", "anonymous_user_abc123"),
        ("signup_completed", "user_456"),
        ("$create_alias", "anonymous_user_abc123"),
        ("$set", "user_456"),
    ]
    assert events[3]["properties"]["alias"] == "user_456"


def test_combined_tracking(server):
    events, _ = run_example(server, "combined_tracking.py")
    (captured,) = [e for e in events if e["event"] == "feature_used"]
    assert captured["properties"]["$groups"] == {"company": "company_xyz", "team": "team_frontend"}
    assert len(events) == 4


def test_context_properties(server):
    events, _ = run_example(server, "context_properties.py")
    person, captured = events
    assert person["$set"] == {
        "session_type": "premium",
        "ab_test_group": "variant_b",
        "last_login": "2024-09-07T10:30:00Z",
        "subscription_status": "active",
    }
    assert captured["distinct_id"] == "user_456"
    assert captured["properties"]["ab_test_group"] == "variant_b"


def test_property_types(server):
    events, _ = run_example(server, "property_types.py")
    assert len(events) == 7
    assert events[4]["$set"]["interests"] == ["technology", "sports", "music"]
    assert events[1]["$set"] == {"age": 28, "score": 95.5}


def test_group_association(server):
    server.flags = {"new_dashboard": {"key": "new_dashboard", "enabled": True}}
    report, flag_called = run_example(server, "group_association.py")[0]
    assert report["properties"]["$groups"] == {
        "company": "acme_corp",
        "division": "north_america",
        "team": "sales_team_west",
    }
    (flags,) = [r.payload for r in server.requests if r.path.startswith("/flags/")]
    assert flags["group_properties"] == {"company": {"$group_key": "acme_corp", "size": "large", "industry": "tech"}}
    assert flag_called["event"] == "$feature_flag_called"
    assert flag_called["properties"]["$feature_flag_response"] is True


def test_error_handling(server):
    events, stderr = run_example(server, "error_handling.py")
    validated, from_context = events
    assert validated["$set"] == {"valid_string": "hello", "valid_number": 42, "nested_object.key": "value"}
    assert from_context["distinct_id"] == "user123"
    assert "'invalid_function'" in stderr
    assert "without a distinct_id" in stderr


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("test_")))
def test_every_example_runs_clean(server, name):
    events, stderr = run_example(server, name)
    assert events, "nothing reached PostHog"
    if name != "error_handling.py":
        assert "posthog_otel" not in stderr, stderr


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("test_")))
def test_every_example_says_how_to_run_it_in_its_first_lines(name):
    head = "\n".join((EXAMPLES / name).read_text().splitlines()[:8])
    assert "python examples/%s" % name in head
    assert "posthog-otel server" in head or "POSTHOG_API_KEY" in head


# --- the README's own snippets and claims, run as written --------------------------------------

README = EXAMPLES.parent / "README.md"


def readme_python(containing):
    """The README's ```python block that contains ``containing``, as written."""
    blocks = README.read_text().split("```python\n")[1:]
    (block,) = [b.split("```", 1)[0] for b in blocks if containing in b]
    return block


def run_snippet(server, code, tmp_path):
    script = tmp_path / "snippet.py"
    script.write_text(code)
    result = run([sys.executable, str(script)], POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url)
    assert result.returncode == 0, result.stderr
    return server.events


def test_readme_quickstart_in_code_runs_as_written(server, tmp_path):
    events = run_snippet(server, readme_python("posthog.configure()"), tmp_path)  # no flush: exit delivers
    assert [e["event"] for e in events] == [
        "$set", "$set_once", "$groupidentify", "$create_alias", "feature_used", "$set", "dashboard_viewed"
    ]  # fmt: skip
    assert events[-1]["properties"]["ab_test_group"] == "variant_b" and events[-1]["distinct_id"] == "user123"


def test_readme_sdk_snippet_runs_as_written(server, tmp_path):
    code = readme_python("PostHogLogRecordProcessor(PostHogLogExporter())") + (
        "import posthog_otel\nposthog_otel.set('u', {'a': 1})\nprovider.shutdown()\n"
    )
    (event,) = run_snippet(server, code, tmp_path)
    assert event["$set"] == {"a": 1}


def test_readme_contexts_follow_asyncio_tasks_and_copied_contexts_not_plain_threads():
    """What the README says where contexts are introduced (threads: with the threading
    instrumentation, tests/test_threads.py)."""
    import asyncio
    import contextvars
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import posthog_otel

    seen = {}
    with posthog_otel.new_context():
        posthog_otel.identify_context("user123")
        thread = threading.Thread(target=lambda: seen.update(thread=posthog_otel.get_context_distinct_id()))
        thread.start()
        thread.join()
        with ThreadPoolExecutor(1) as pool:
            seen["pool"] = pool.submit(posthog_otel.get_context_distinct_id).result()
            seen["copied"] = pool.submit(contextvars.copy_context().run, posthog_otel.get_context_distinct_id).result()

        async def probe():
            return posthog_otel.get_context_distinct_id()

        async def in_a_task():
            return await asyncio.create_task(probe())

        seen["task"] = asyncio.run(in_a_task())
    assert seen == {"thread": None, "pool": None, "copied": "user123", "task": "user123"}
