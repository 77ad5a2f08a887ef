"""The retry policy and the loss tracker, alone: pure functions with a pinned random source."""

from __future__ import annotations

import datetime as dt

import pytest

from posthog_otel._delivery.http import Response
from posthog_otel._delivery.retry import Backoff, Outcome, RetryPolicy, judge_status, parse_retry_after
from posthog_otel._delivery.sequence import SequenceTracker

NO_JITTER = RetryPolicy(backoff_base=0.5, backoff_max=10.0, jitter=0.0)


def test_backoff_doubles_from_the_base_up_to_the_cap():
    assert [NO_JITTER.backoff(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert NO_JITTER.backoff(10_000) == 10.0  # no overflow after a long outage


@pytest.mark.parametrize("rand, factor", [(0.0, 0.8), (0.5, 1.0), (1.0, 1.2)])
def test_jitter_spreads_the_wait_by_twenty_percent(rand, factor):
    policy = RetryPolicy(backoff_base=1.0, backoff_max=100.0)
    assert policy.backoff(3, rand=lambda: rand) == pytest.approx(4.0 * factor)


def test_retry_after_is_a_floor_and_is_capped():
    assert NO_JITTER.wait_after(1, retry_after=5.0) == 5.0
    assert NO_JITTER.wait_after(4, retry_after=0.1) == 4.0
    assert NO_JITTER.wait_after(1, retry_after=3600.0) == 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_starts_over_after_any_success():
    clock = Clock()
    backoff = Backoff(NO_JITTER, clock=clock)
    clock.now += 60  # nothing taken since the start, a minute ago: down
    assert [backoff.failed() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 8.0]
    backoff.succeeded()
    clock.now += 60  # and long ago
    assert backoff.failed() == 0.5


def test_a_process_that_just_started_assumes_posthog_is_up():
    clock = Clock()
    backoff = Backoff(NO_JITTER, clock=clock)
    assert [backoff.failed() for _ in range(4)] == [0.5] * 4
    clock.now += 30
    assert backoff.failed() == 8.0


def test_a_posthog_that_took_something_lately_is_flaky_not_down():
    clock = Clock()
    backoff = Backoff(NO_JITTER, clock=clock)
    backoff.succeeded()
    clock.now += 5
    assert [backoff.failed() for _ in range(7)] == [0.5] * 7  # a streak stays short
    clock.now += 30  # nothing taken for 35 s: down after all
    assert backoff.failed() == 10.0
    assert NO_JITTER.wait_after(6, retry_after=5.0, flaky=True) == 5.0  # asked to wait: it waits


@pytest.mark.parametrize(
    "value, expected",
    [
        ("3", 3.0),
        (" 2.5 ", 2.5),
        ("-4", 0.0),
        ("nan", None),
        ("", None),
        (None, None),
        ("soon", None),
        ("Sun, 29 Nov 2026 10:00:30 GMT", 30.0),  # an HTTP-date, 30 s after "now"
        ("Sun, 29 Nov 2026 09:59:00 GMT", 0.0),  # in the past
    ],
)
def test_retry_after_in_seconds_or_as_an_http_date(value, expected):
    now = dt.datetime(2026, 11, 29, 10, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after(value, now=now) == expected


@pytest.mark.parametrize(
    "status, outcome",
    [(401, Outcome.UNAUTHORIZED), (403, Outcome.UNAUTHORIZED), (413, Outcome.TOO_LARGE), (400, Outcome.REJECTED),
     (404, Outcome.REJECTED), (408, None), (429, None), (500, None), (503, None), (599, None)],
)  # fmt: skip
def test_which_answers_are_retried(status, outcome):
    verdict = judge_status(Response(status, {"Retry-After": "7"}, "body"), RetryPolicy())
    assert verdict.outcome is outcome
    assert verdict.retry_after == (7.0 if outcome is None else None)


def test_an_unauthorized_answer_never_carries_the_page_it_came_with():
    page = '{"error": "invalid key", "request": {"api_key": "phc_secret0123456789"}}'
    assert "phc_" not in judge_status(Response(401, {}, page), RetryPolicy()).detail


# --- counting what the SDK's queue dropped ---------------------------------------------------


def test_gaps_are_losses_once_the_next_batch_did_not_fill_them():
    tracker = SequenceTracker(start=1)
    assert tracker.saw([1, 2, 3, 7, 8]) == 0  # 4..6 missing: maybe late
    assert tracker.saw([9, 10]) == 0  # one batch of grace
    assert tracker.saw([11]) == 3


def test_records_reordered_between_threads_are_late_not_lost():
    tracker = SequenceTracker(start=1)
    assert tracker.saw([1, 2, 4]) == 0  # 3 is still on its way
    assert tracker.saw([3, 5]) == 0
    assert tracker.saw([6]) == 0
    assert tracker.settle() == 0


def test_settle_confirms_what_is_still_open():
    tracker = SequenceTracker(start=10)
    tracker.saw([10, 15])
    assert tracker.settle() == 4


def test_numbers_from_before_the_tracker_are_not_its_to_judge():
    tracker = SequenceTracker(start=100)
    assert tracker.saw([5, 6, 100, 101]) == 0
    assert tracker.settle() == 0
