"""feature_enabled / get_feature_flag: PostHog's /flags/ request and $feature_flag_called event."""

from __future__ import annotations

import warnings

import pytest

import posthog_otel

from .conftest import API_KEY
from .test_conformance import normalise

posthog = pytest.importorskip("posthog")

FLAGS = {
    "new_dashboard": {
        "key": "new_dashboard",
        "enabled": True,
        "variant": None,
        "reason": {"code": "condition_match", "description": "Matched condition set 1"},
        "metadata": {"id": 7, "version": 3, "payload": None},
    },
    "checkout": {"key": "checkout", "enabled": True, "variant": "test", "metadata": {"id": 8, "version": 1}},
}


def seed_call(api):
    """The seed's example, as written."""
    return api.feature_enabled(
        'new_dashboard',
        'user123',
        groups={'company': 'acme_corp'},
        person_properties={'plan': 'enterprise'},
        group_properties={
            'company': {'size': 'large', 'industry': 'tech'}
        }
    )  # fmt: skip


def flag_requests(server):
    return [dict(r.payload, sent_at="<now>") for r in server.requests if r.path.startswith("/flags/")]


@pytest.mark.parametrize(
    "call",
    [
        seed_call,
        lambda api: api.get_feature_flag("checkout", "user123"),
        lambda api: api.get_feature_flag("missing_flag", "user123"),
    ],
    ids=["seed-example", "variant", "missing"],
)
def test_same_request_result_and_event_as_posthog_sdk(call, server, pipeline):
    server.flags = FLAGS
    reference = posthog.Client(API_KEY, host=server.url, sync_mode=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs = call(reference)
    reference.flush()
    expected_requests = flag_requests(server)
    expected_events = [normalise(e, ours=False) for e in server.events]
    server.reset()

    ours = call(posthog_otel)
    pipeline.flush()
    assert ours == theirs
    assert [path for path in (r.path for r in server.requests) if path.startswith("/flags")] == ["/flags/?v=4"]
    assert flag_requests(server) == expected_requests
    assert [normalise(e, ours=True) for e in server.events] == expected_events


def test_flag_called_is_reported_once_per_person_flag_and_value(server, pipeline):
    server.flags = FLAGS
    for _ in range(3):
        assert posthog_otel.feature_enabled("new_dashboard", "user123") is True
    pipeline.flush()
    assert len(server.by_event("$feature_flag_called")) == 1


def test_flags_unreachable_returns_none_with_a_warning(provider, caplog):
    from .support import free_port

    posthog_otel.configure(api_key=API_KEY, host="http://127.0.0.1:%d" % free_port(), logger_provider=provider)
    assert posthog_otel.feature_enabled("new_dashboard", "user123") is None
    assert "could not reach" in caplog.text


def test_flags_use_the_context_person(server, pipeline):
    server.flags = FLAGS
    with posthog_otel.new_context():
        posthog_otel.identify_context("from-context")
        assert posthog_otel.get_feature_flag("checkout") == "test"
    (request,) = [r for r in server.requests if r.path.startswith("/flags/")]
    assert request.payload["distinct_id"] == "from-context"
