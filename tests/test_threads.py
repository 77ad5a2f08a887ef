"""The context follows work into threads the OpenTelemetry way, and says when it did not.

With ``opentelemetry-instrumentation-threading``, a ``Thread``, a ``Timer`` or a
``ThreadPoolExecutor`` job started inside a context sees its person, session and tags;
without it, ``contextvars.copy_context().run`` does the same.  Work that left its context
behind is said once (and counted for personless events), never silently sent under a
random id.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import context as otel_context

import posthog_otel as posthog

threading_instrumentation = pytest.importorskip("opentelemetry.instrumentation.threading")


@pytest.fixture
def instrumented_threads():
    instrumentor = threading_instrumentation.ThreadingInstrumentor()
    instrumentor.instrument()
    yield
    instrumentor.uninstrument()


def sent(server, pipeline):
    pipeline.flush()
    return server.events


def run_in_thread(job):
    thread = threading.Thread(target=job)
    thread.start()
    thread.join()


def test_with_the_threading_instrumentation_threads_and_pool_jobs_see_the_person(
    instrumented_threads, server, pipeline, caplog
):
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    with posthog.new_context():
        posthog.identify_context("user_456")
        posthog.set_context_session("session-1")
        posthog.tag("plan", "pro")
        run_in_thread(lambda: posthog.capture("in_thread"))
        with ThreadPoolExecutor(2) as pool:
            pool.submit(posthog.capture, "in_pool").result()
            pool.submit(posthog.set, {"seen": True}).result()
        timer = threading.Timer(0, posthog.capture, args=("in_timer",))
        timer.start()
        timer.join()
    events = {e["event"]: e for e in sent(server, pipeline)}
    assert set(events) == {"in_thread", "in_pool", "$set", "in_timer"}
    assert {e["distinct_id"] for e in events.values()} == {"user_456"}
    for name in ("in_thread", "in_pool", "in_timer"):
        assert events[name]["properties"]["$session_id"] == "session-1"
        assert events[name]["properties"]["plan"] == "pro"
    assert events["$set"]["$set"] == {"plan": "pro", "seen": True}
    assert posthog.drop_counts() == {}
    assert "personless" not in caplog.text


def test_a_thread_sees_what_the_context_is_told_after_it_started(instrumented_threads):
    started, told, seen = threading.Event(), threading.Event(), {}

    def job():
        started.set()
        told.wait(5)
        seen["id"] = posthog.get_context_distinct_id()

    with posthog.new_context():
        thread = threading.Thread(target=job)
        thread.start()
        started.wait(5)
        posthog.identify_context("user_456")  # the thread shares the scope, as asyncio tasks do
        told.set()
        thread.join()
    assert seen == {"id": "user_456"}


def test_a_scope_opened_in_a_thread_stays_there(instrumented_threads):
    seen = {}

    def job():
        with posthog.new_context():
            posthog.identify_context("in-thread")
            seen["inside"] = posthog.get_context_distinct_id()
        seen["after"] = posthog.get_context_distinct_id()

    with posthog.new_context():
        posthog.identify_context("outer")
        run_in_thread(job)
        assert posthog.get_context_distinct_id() == "outer"
    assert seen == {"inside": "in-thread", "after": "outer"}
    assert otel_context.get_current() == otel_context.Context()  # nothing left attached here


def test_without_instrumentation_copy_context_is_the_one_liner(server, pipeline):
    with posthog.new_context():
        posthog.identify_context("user_456")
        with ThreadPoolExecutor(1) as pool:
            uuid = pool.submit(contextvars.copy_context().run, posthog.capture, "copied").result()
    (event,) = sent(server, pipeline)
    assert (event["uuid"], event["distinct_id"]) == (uuid, "user_456")


def test_a_personless_capture_in_a_thread_that_left_its_context_is_said_once_and_counted(server, pipeline, caplog):
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    with posthog.new_context():
        posthog.identify_context("user_456")
        with ThreadPoolExecutor(1) as pool:
            for _ in range(3):
                pool.submit(posthog.capture, "lost").result()
    events = sent(server, pipeline)
    assert len(events) == 3  # still sent, as PostHog's SDK would: personless
    assert all(e["properties"]["$process_person_profile"] is False for e in events)
    assert posthog.drop_counts() == {"context_not_in_thread": 3}
    assert caplog.text.count("capture() is sent personless") == 1
    assert "opentelemetry-instrumentation-threading" in caplog.text
    assert "copy_context().run" in caplog.text


def test_a_person_update_dropped_in_such_a_thread_says_why(server, pipeline, caplog):
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    with posthog.new_context():
        posthog.identify_context("user_456")
        results = []
        run_in_thread(lambda: results.append(posthog.set({"plan": "pro"})))
    assert results == [None]
    assert posthog.drop_counts() == {"no_distinct_id": 1}
    assert "a `with new_context()` with a person is open in another thread" in caplog.text


def test_no_warning_for_deliberate_or_unrelated_personless_work(server, pipeline, caplog):
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    # No person anywhere: personless is all there is to it.
    run_in_thread(lambda: posthog.capture("background"))
    with posthog.new_context():
        posthog.identify_context("user_456")

        def deliberate():
            with posthog.new_context():  # the thread's own context, without a person: meant
                posthog.capture("deliberate")

        run_in_thread(deliberate)
        posthog.capture("same-thread", distinct_id="someone")
    # The scope with a person has closed: a thread now is unrelated to it.
    run_in_thread(lambda: posthog.capture("later"))
    assert len(sent(server, pipeline)) == 4
    assert posthog.drop_counts() == {}
    assert "personless" not in caplog.text


def test_group_identify_without_a_person_is_not_warned_about(server, pipeline, caplog):
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    with posthog.new_context():
        posthog.identify_context("user_456")
        run_in_thread(lambda: posthog.group_identify("company", "acme", {"name": "Acme"}))
    (event,) = sent(server, pipeline)
    assert event["event"] == "$groupidentify"
    assert "personless" not in caplog.text  # PostHog's own rule: group updates need no person


def test_asyncio_tasks_beside_an_identified_one_are_not_warned_about(server, pipeline, caplog):
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    import asyncio

    async def main():
        entered, done = asyncio.Event(), asyncio.Event()

        async def identified():
            with posthog.new_context():
                posthog.identify_context("user_456")
                entered.set()
                await done.wait()

        async def anonymous():  # not started from that context: asyncio cannot lose a context
            await entered.wait()
            posthog.capture("anonymous")
            done.set()

        await asyncio.gather(identified(), anonymous())

    asyncio.run(main())
    (event,) = sent(server, pipeline)
    assert event["properties"]["$process_person_profile"] is False
    assert posthog.drop_counts() == {} and "personless" not in caplog.text
