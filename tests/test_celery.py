"""Celery: a task runs under the person, session and tags of the context that sent it.

A real worker, in this process, on Celery's in-memory broker.
"""

from __future__ import annotations

import logging
import threading

import pytest

import posthog_otel as posthog

from .conftest import API_KEY

celery = pytest.importorskip("celery")
from celery.contrib.testing.worker import start_worker  # noqa: E402

from posthog_otel.integrations.celery import instrument_celery, uninstrument_celery  # noqa: E402

app = celery.Celery("identity-tests", broker="memory://", backend="cache+memory://")
app.conf.update(worker_hijack_root_logger=False, broker_transport_options={"polling_interval": 0.01})


@app.task(name="identity.report")
def report(event):
    posthog.capture(event)
    return [posthog.get_context_distinct_id(), posthog.get_context_session_id(), posthog.get_tags()]


@app.task(name="identity.fail")
def fail(order):
    raise LookupError("no stock for order %s" % order)


@pytest.fixture(scope="module")
def running_worker():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield
            _wake_to_stop()
    finally:  # the worker sets up logging (root at ERROR, a handler): later tests read warnings
        root.setLevel(level)
        root.handlers[:] = handlers


def _wake_to_stop():
    """Stop the worker now rather than after its 2 s broker poll: its loop looks at the stop flag
    between two polls and polls once more after seeing it, so two no-op messages end both."""
    from celery.worker import state

    state.should_terminate = 0
    noop.delay()
    noop.delay()


@app.task(name="identity.noop")
def noop():
    return None


@pytest.fixture
def worker(running_worker):
    instrument_celery()
    yield report
    uninstrument_celery()


def test_a_task_runs_under_the_senders_person_session_and_tags(worker, server, pipeline):
    with posthog.new_context():
        posthog.identify_context("user_456")
        posthog.set_context_session("session-1")
        posthog.tag("plan", "pro")
        posthog.tag("nested", {"a": 1})
        result = worker.delay("task_ran")
    assert result.get(timeout=30, interval=0.01) == ["user_456", "session-1", {"plan": "pro", "nested.a": 1}]
    pipeline.flush()
    (event,) = server.wait_for_events(1)
    assert event["distinct_id"] == "user_456"
    assert event["properties"]["$session_id"] == "session-1"
    assert event["properties"]["plan"] == "pro"


def test_tasks_do_not_inherit_from_each_other_on_the_worker(worker, server, pipeline):
    with posthog.new_context():
        posthog.identify_context("user_456")
        first = worker.delay("first")
    assert first.get(timeout=30, interval=0.01)[0] == "user_456"
    second = worker.delay("second")  # sent outside any context
    assert second.get(timeout=30, interval=0.01) == [None, None, {}]
    pipeline.flush()
    events = {e["event"]: e for e in server.wait_for_events(2)}
    assert events["second"]["properties"]["$process_person_profile"] is False
    assert posthog.get_context_distinct_id() is None  # nothing left behind in this thread either


def test_uninstrumented_the_person_does_not_travel(worker):
    uninstrument_celery()
    with posthog.new_context():
        posthog.identify_context("user_456")
        result = worker.delay("untracked")
    assert result.get(timeout=30, interval=0.01)[0] is None


@pytest.fixture
def failure_signalled():
    """Set once Celery's ``task_failure`` receivers, ours among them, have run: the result is
    stored before they are called, so a failed ``get()`` does not mean they ran."""
    from celery import signals

    done = threading.Event()
    signals.task_failure.connect(lambda **_: done.set(), weak=False, dispatch_uid="tests-failure-signalled")
    yield done
    signals.task_failure.disconnect(dispatch_uid="tests-failure-signalled")


def test_a_failing_task_is_one_exception_on_the_senders_person(worker, local, provider, failure_signalled):
    server, store = local
    pipeline = posthog.configure(api_key=API_KEY, host=server.url, logger_provider=provider, schedule_delay_millis=50)
    with posthog.new_context():
        posthog.identify_context("user_456")
        posthog.tag("plan", "pro")
        result = fail.delay(12)
    with pytest.raises(LookupError):
        result.get(timeout=30, interval=0.01)
    assert failure_signalled.wait(30)
    assert pipeline.flush()
    (event,) = store.events()
    assert (event["event"], event["distinct_id"]) == ("$exception", "user_456")
    properties = event["properties"]
    assert properties["plan"] == "pro" and properties["$exception_source"] == "celery.task_failure"
    (entry,) = properties["$exception_list"]
    assert (entry["type"], entry["value"]) == ("LookupError", "no stock for order 12")
    assert (entry["mechanism"]["type"], entry["mechanism"]["handled"]) == ("task", False)
    assert entry["stacktrace"]["frames"][-1]["function"] == "fail"


def test_capture_exceptions_false_leaves_failing_tasks_alone(worker, local, provider, failure_signalled):
    instrument_celery(capture_exceptions=False)
    server, store = local
    pipeline = posthog.configure(api_key=API_KEY, host=server.url, logger_provider=provider, schedule_delay_millis=50)
    with pytest.raises(LookupError):
        fail.delay(13).get(timeout=30, interval=0.01)
    assert failure_signalled.wait(30)
    assert pipeline.flush()
    assert store.events() == []
