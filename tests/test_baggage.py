"""Identity across services (opt-in): ids in W3C baggage on the way out, baggage's ids on the way in.

The real hop: this process, in a context, calls a service in another process over HTTP
with OTel's propagators; that service's capture lands on this process's person when
``propagate_identity`` is on, and is personless (and says why) when it is off.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote_plus

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import baggage, context, propagate

import posthog_otel as posthog
from posthog_otel import _baggage, _state

from .conftest import API_KEY
from .support import child_env

APPS = Path(__file__).parent / "apps"


def sent(server, pipeline):
    pipeline.flush()
    return server.events


def outgoing_headers():
    """What OTel's propagators put on an outgoing request from here."""
    carrier = {}
    propagate.inject(carrier)
    return carrier


def incoming(headers):
    """Attach what OTel's propagators extract from an incoming request (as its server middleware does)."""
    return context.attach(propagate.extract(headers))


@pytest.fixture
def propagating(server, provider):
    return posthog.configure(
        api_key=API_KEY, host=server.url, logger_provider=provider, schedule_delay_millis=50, propagate_identity=True
    )


def test_off_by_default_ids_stay_out_of_baggage(pipeline):
    with posthog.new_context():
        posthog.identify_context("user_456")
        posthog.set_context_session("session-1")
        assert "baggage" not in outgoing_headers()


def test_on_ids_go_into_the_baggage_header_and_leave_with_the_scope(propagating):
    with posthog.new_context():
        posthog.identify_context("user_456")
        posthog.set_context_session("session-1")
        header = outgoing_headers()["baggage"]
        assert "posthog.distinct_id=user_456" in header and "posthog.session_id=session-1" in header
        with posthog.new_context():
            posthog.identify_context("someone-else")
            assert "posthog.distinct_id=someone-else" in outgoing_headers()["baggage"]
        assert "posthog.distinct_id=user_456" in outgoing_headers()["baggage"]
    assert "baggage" not in outgoing_headers()


def test_a_refused_id_takes_the_enclosing_one_out_of_baggage(propagating):
    with posthog.new_context():
        posthog.identify_context("user_456")
        with posthog.new_context():
            posthog.identify_context("bad\udcff")
            assert "posthog.distinct_id" not in outgoing_headers().get("baggage", "")


def test_on_incoming_baggage_gives_operations_their_person_and_session(propagating, server):
    token = incoming({"baggage": "posthog.distinct_id=user_456,posthog.session_id=session-1,other=x"})
    try:
        assert posthog.get_context_distinct_id() == "user_456"
        uuid = posthog.capture("downstream")
        posthog.set({"plan": "pro"})
        with posthog.new_context():
            posthog.identify_context("explicit-scope")  # a scope's own person wins
            posthog.capture("scoped")
        with posthog.new_context(fresh=True):  # fresh: nothing inherited, baggage included
            posthog.capture("fresh")
    finally:
        context.detach(token)
    events = {e["event"]: e for e in sent(server, propagating)}
    assert events["downstream"]["uuid"] == uuid
    assert events["downstream"]["distinct_id"] == "user_456"
    assert events["downstream"]["properties"]["$session_id"] == "session-1"
    assert events["$set"]["distinct_id"] == "user_456"
    assert events["scoped"]["distinct_id"] == "explicit-scope"
    assert events["fresh"]["properties"]["$process_person_profile"] is False
    assert "$session_id" not in events["fresh"]["properties"]


def test_off_incoming_baggage_is_ignored_and_a_dropped_update_says_so(pipeline, server, caplog):
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    token = incoming({"baggage": "posthog.distinct_id=attacker-chosen,posthog.session_id=s"})
    try:
        assert posthog.get_context_distinct_id() is None
        posthog.capture("downstream")
        assert posthog.set({"plan": "pro"}) is None
    finally:
        context.detach(token)
    (event,) = sent(server, pipeline)
    assert event["properties"]["$process_person_profile"] is False
    assert "$session_id" not in event["properties"]
    assert "set(): without a distinct_id" in caplog.text
    assert "the incoming W3C baggage names a person (posthog.distinct_id), which is ignored" in caplog.text


def test_the_environment_variable_turns_it_on_without_an_exporter(monkeypatch):
    monkeypatch.setenv("POSTHOG_OTEL_PROPAGATE_IDENTITY", "true")
    _baggage.set_propagation(None)  # a process whose records go to a Collector: no PostHog exporter
    with posthog.new_context():
        posthog.identify_context("user_456")
        assert "posthog.distinct_id=user_456" in outgoing_headers()["baggage"]


def test_unusable_incoming_baggage_is_counted_and_ignored(propagating, server, caplog):
    token = context.attach(baggage.set_baggage(_baggage.DISTINCT_ID, "bad\udcff"))
    try:
        posthog.capture("downstream")
    finally:
        context.detach(token)
    (event,) = sent(server, propagating)
    assert event["properties"]["$process_person_profile"] is False
    assert posthog.drop_counts() == {"invalid_baggage": 1}
    assert "the baggage entry posthog.distinct_id" in caplog.text


def test_an_id_that_would_arrive_changed_is_not_carried(propagating, caplog):
    with posthog.new_context():
        posthog.identify_context("user_456")
        for changed in (" padded ", "x" * 5000):
            with posthog.new_context():
                posthog.identify_context(changed)
                assert posthog.get_context_distinct_id() == changed  # here, it is the person
                assert "posthog.distinct_id" not in outgoing_headers().get("baggage", "")  # not elsewhere
    assert posthog.drop_counts() == {"not_propagated": 2}
    assert "cannot travel in W3C baggage (receivers strip whitespace" in caplog.text


ids = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=1500),
    st.integers(),
    st.none(),
    st.binary(),
    st.builds(lambda text: " %s\t" % text, st.text()),
)


@settings(max_examples=80, deadline=None)
@given(ids, st.one_of(st.text(), st.none()))
def test_another_service_sees_the_same_person_or_none_never_another(distinct_id, session_id):
    _baggage.set_propagation(True)
    _state.raise_internal_errors = True
    try:
        with posthog.new_context():
            posthog.identify_context(distinct_id)  # any value: never raises
            posthog.set_context_session(session_id)
            person, session = posthog.get_context_distinct_id(), posthog.get_context_session_id()
            carried = outgoing_headers()
        token = incoming(carried)
        try:
            assert posthog.get_context_distinct_id() in (person, None)
            assert posthog.get_context_session_id() in (session, None)
            if person is not None and person == person.strip() and len(quote_plus(person)) < 4000:
                assert posthog.get_context_distinct_id() == person
        finally:
            context.detach(token)
    finally:
        _baggage.set_propagation(None)


# --- the real hop: two processes, one HTTP request ----------------------------------------------


def start_service(server, propagate_identity):
    service = subprocess.Popen(
        [sys.executable, str(APPS / "identity_service.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(
            POSTHOG_API_KEY=API_KEY,
            POSTHOG_HOST=server.url,
            POSTHOG_OTEL_PROPAGATE_IDENTITY=propagate_identity,
            OTEL_PYTHON_LOG_LEVEL="error",
        ),
    )
    port = service.stdout.readline().strip()
    assert port, service.stderr.read()
    return service, "http://127.0.0.1:%s/orders" % port


def stop(service):
    service.stdin.close()
    service.wait(30)
    return service.stderr.read()


@pytest.mark.parametrize("on", [True, False], ids=["propagate_identity", "default-off"])
def test_a_capture_in_another_service_lands_on_the_callers_person_only_when_it_is_on(on, server, propagating):
    pytest.importorskip("opentelemetry.instrumentation.wsgi")  # the other service extracts the W3C headers with it
    service, url = start_service(server, "true" if on else "false")
    try:
        with posthog.new_context():
            posthog.identify_context("user_456")
            posthog.set_context_session("session-1")
            answer = requests.get(url, headers=outgoing_headers(), timeout=30)
        (event,) = server.wait_for_events(1)
    finally:
        said = stop(service)
    assert answer.status_code == 200
    assert event["event"] == "downstream_viewed"
    assert event["properties"]["$request_path"] == "/orders"
    if on:
        assert answer.text == "user_456"
        assert event["distinct_id"] == "user_456"
        assert event["properties"]["$session_id"] == "session-1"
    else:  # the baggage arrived (this side is on) and was ignored, as the default must
        assert answer.text == ""
        assert event["properties"]["$process_person_profile"] is False
        assert "$session_id" not in event["properties"]
        assert "a request's W3C baggage names a person (posthog.distinct_id), which is ignored" in said
