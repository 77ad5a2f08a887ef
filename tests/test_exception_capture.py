"""``capture_exception`` and exception autocapture on the caller's side: what is sent, what is
refused (and counted), what a hot failing loop costs PostHog, and hooks that never change how
an uncaught exception ends a thread or the process."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import posthog_otel
from posthog_otel import _state
from posthog_otel._exceptions import autocapture, limits
from posthog_otel._exceptions.limits import RateLimiter

from .conftest import API_KEY
from .support import child_env

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def hooks():
    """Whatever the test installs, the interpreter's hooks are put back."""
    saved = sys.excepthook, threading.excepthook
    yield
    posthog_otel.enable_exception_autocapture = False
    sys.excepthook, threading.excepthook = saved


def fail(n):
    raise TimeoutError("upstream timed out after %d ms" % n)


def test_a_hot_loop_raising_ten_thousand_times_sends_a_burst_and_counts_the_rest(server, pipeline, monkeypatch):
    """PostHog's SDK would send all 10,000 (it limits only autocapture, and only when asked). The
    clock stands still here so that no bucket refills while the loop runs, however slow the machine."""
    monkeypatch.setattr(limits.calls, "clock", lambda: 1000.0)
    returned = []
    for attempt in range(10_000):
        try:
            fail(attempt)
        except TimeoutError as error:
            returned.append(posthog_otel.capture_exception(error, distinct_id="worker"))
    assert pipeline.flush()
    events = server.wait_for_events(limits.BURST)
    assert len(events) == limits.BURST and all(r is not None for r in returned[: limits.BURST])
    assert returned[limits.BURST :] == [None] * (10_000 - limits.BURST)
    assert posthog_otel.drop_counts()["exception_rate_limited"] == 10_000 - limits.BURST
    try:  # the same type raised elsewhere has its own budget
        raise TimeoutError("elsewhere")
    except TimeoutError as error:
        assert posthog_otel.capture_exception(error) is not None


def test_the_bucket_refills_as_posthogs_does():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert sum(limiter.allow("k") for _ in range(100)) == limits.BURST
    now[0] = limits.REFILL_SECONDS - 0.01
    assert not limiter.allow("k")
    now[0] = limits.REFILL_SECONDS
    assert sum(limiter.allow("k") for _ in range(100)) == limits.REFILL
    now[0] = 1e6
    assert sum(limiter.allow("k") for _ in range(100)) == limits.BURST  # never more than a burst


def test_buckets_are_bounded_and_an_overflow_of_places_shares_one(monkeypatch):
    monkeypatch.setattr(limits, "MAX_KEYS", 10)
    limiter = RateLimiter(clock=lambda: 0.0)
    assert all(limiter.allow(("T", str(place))) for place in range(10))
    allowed = sum(limiter.allow(("T", "new-%d" % i)) for i in range(1000))  # an attacker's endless new places
    assert allowed == limits.BURST and len(limiter._buckets) == 10


def test_nothing_to_capture_is_said_and_counted(server, pipeline, caplog):
    assert posthog_otel.capture_exception() is None
    assert posthog_otel.capture_exception("not an exception") is None
    assert posthog_otel.drop_counts() == {"no_exception": 1, "invalid_exception": 1}
    assert "none is being handled" in caplog.text and "not 'not an exception'" in caplog.text


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no")

    def __repr__(self):
        raise RuntimeError("no")


def test_an_exception_that_cannot_be_printed_is_still_sent(server, pipeline):
    try:
        raise Unprintable()
    except Unprintable as error:
        assert posthog_otel.capture_exception(error, properties={"bad": "\udcff", "ok": 1}) is not None
    pipeline.flush()
    (event,) = server.wait_for_events(1)
    assert event["properties"]["$exception_list"][0]["value"] == "<broken repr>"
    assert event["properties"]["ok"] == 1 and "bad" not in event["properties"]


def test_surrogates_in_a_message_are_replaced_not_fatal(server, pipeline):
    try:
        raise ValueError(b"caf\xff".decode("utf-8", "surrogateescape"))
    except ValueError as error:
        assert posthog_otel.capture_exception(error) is not None
    pipeline.flush()
    (event,) = server.wait_for_events(1)
    assert event["properties"]["$exception_list"][0]["value"] == "caf\ufffd"


weird = st.one_of(
    st.none(), st.integers(), st.text(), st.binary(), st.lists(st.integers(), max_size=3),
    st.builds(ValueError, st.text()), st.builds(KeyError, st.integers()), st.builds(Unprintable),
    st.tuples(st.none(), st.none(), st.none()), st.tuples(st.just(ValueError), st.builds(ValueError), st.none()),
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    weird,
    st.one_of(st.none(), st.text(), st.integers()),
    st.one_of(st.none(), st.dictionaries(st.text(), weird, max_size=3)),
)
def test_capture_exception_never_raises_whatever_it_is_given(exception, distinct_id, properties):
    _state.raise_internal_errors = True  # a bug of ours raises here instead of being a quiet drop
    limits.calls.reset()
    returned = posthog_otel.capture_exception(exception, distinct_id, properties)
    assert returned is None or isinstance(returned, str)


def test_a_thread_that_dies_is_captured_and_the_previous_hook_still_runs(server, pipeline, hooks):
    seen = []
    threading.excepthook = lambda args: seen.append(args.exc_type)
    posthog_otel.enable_exception_autocapture = True
    posthog_otel.enable_exception_autocapture = True  # again: still one hook

    def work():
        fail(5)

    for target in (work, lambda: sys.exit(3)):  # a thread's SystemExit is no error
        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
    assert seen == [TimeoutError, SystemExit]
    pipeline.flush()
    (event,) = server.wait_for_events(1)
    properties = event["properties"]
    assert (properties["$exception_level"], properties["$exception_source"]) == ("error", "python.threading_excepthook")
    assert properties["$exception_list"][0]["mechanism"]["handled"] is False
    assert properties["$exception_list"][0]["mechanism"]["type"] == "onuncaughtexception"
    assert properties["$exception_list"][0]["stacktrace"]["frames"][-1]["function"] == "fail"


def test_disabled_the_hooks_go_back_or_only_pass_on(hooks):
    before = sys.excepthook, threading.excepthook
    posthog_otel.enable_exception_autocapture = True
    assert (sys.excepthook, threading.excepthook) != before
    posthog_otel.enable_exception_autocapture = False
    assert (sys.excepthook, threading.excepthook) == before
    posthog_otel.enable_exception_autocapture = True
    later = lambda args: None  # noqa: E731 (an application's hook installed over ours)
    threading.excepthook = later
    posthog_otel.enable_exception_autocapture = False
    assert threading.excepthook is later and sys.excepthook == before[0]
    assert not autocapture.exception_autocapture_enabled()


UNCAUGHT = """
    import sys
    import posthog_otel

    posthog_otel.configure(schedule_delay_millis=50)

    def previous(kind, value, tb):
        sys.stderr.write("the application's hook ran\\n")
        sys.__excepthook__(kind, value, tb)

    sys.excepthook = previous
    if sys.argv[1] == "on":
        posthog_otel.enable_exception_autocapture = True

    def start():
        raise RuntimeError("cannot read the configuration")

    start()
"""


@pytest.mark.parametrize("autocapture_on", [False, True])
def test_an_uncaught_exception_ends_the_process_as_before_and_is_sent(server, tmp_path, autocapture_on):
    env = child_env(POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url, POSTHOG_OTEL_SPOOL_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(UNCAUGHT), "on" if autocapture_on else "off"],
                          env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert "the application's hook ran" in done.stderr
    assert done.stderr.rstrip().endswith("RuntimeError: cannot read the configuration")
    events = server.by_event("$exception")
    if not autocapture_on:
        assert events == []
        return
    (event,) = events
    properties = event["properties"]
    assert (properties["$exception_level"], properties["$exception_source"]) == ("fatal", "python.sys_excepthook")
    assert properties["$exception_list"][0]["stacktrace"]["frames"][-1]["function"] == "start"
    assert properties["$process_person_profile"] is False


def test_a_context_sends_what_escapes_it_on_its_person_as_posthogs_does(server, pipeline, hooks):
    for capture_exceptions, autocapture_on in ((None, False), (False, True), (True, False), (None, True)):
        if autocapture_on:
            posthog_otel.enable_exception_autocapture = True
        with pytest.raises(TimeoutError):
            with posthog_otel.new_context(capture_exceptions=capture_exceptions):
                posthog_otel.identify_context("user_%s_%s" % (capture_exceptions, autocapture_on))
                posthog_otel.tag("plan", "pro")
                fail(1)
        posthog_otel.enable_exception_autocapture = False
    pipeline.flush()
    events = server.wait_for_events(2)
    assert [e["distinct_id"] for e in events] == ["user_True_False", "user_None_True"]
    assert all(e["properties"]["plan"] == "pro" for e in events)
    with pytest.raises(TimeoutError):  # an outer context does not send it again
        with posthog_otel.new_context(capture_exceptions=True):
            with posthog_otel.new_context(capture_exceptions=True):
                fail(2)
    pipeline.flush()
    assert len(server.wait_for_events(3)) == 3
