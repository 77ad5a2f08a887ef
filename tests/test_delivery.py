"""Delivery to a real loopback server that injects faults: retries, limits, keys, fork."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
import time

import pytest
from opentelemetry.sdk._logs import LoggerProvider

import posthog_otel as posthog
from posthog_otel import PostHogLogExporter, RetryPolicy
from posthog_otel._delivery.encoding import MAX_EVENT_BYTES

from .conftest import API_KEY
from .support import Fault

FAST = RetryPolicy(backoff_base=0.01, backoff_max=0.05, unauthorized_wait=0.05)


@pytest.fixture
def fast_pipeline(server, provider):
    return posthog.configure(
        exporter=PostHogLogExporter(api_key=API_KEY, host=server.url, retry_policy=FAST),
        logger_provider=provider,
        schedule_delay_millis=50,
    )


def test_request_envelope_and_gzip(server, pipeline):
    posthog.set("u", {"a": 1})
    pipeline.flush()
    (request,) = server.requests
    assert request.path == "/batch/"
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("posthog-otel/")
    assert set(request.payload) == {"api_key", "batch", "sent_at", "historical_migration"}
    assert request.payload["api_key"] == API_KEY
    assert request.payload["historical_migration"] is False
    assert request.payload["sent_at"].endswith("+00:00")


def test_gzip_can_be_turned_off(server, provider):
    pipeline = posthog.configure(api_key=API_KEY, host=server.url, gzip=False, logger_provider=provider)
    posthog.set("u", {"a": 1})
    pipeline.flush()
    (request,) = server.requests
    assert "Content-Encoding" not in request.headers
    assert json.loads(request.raw)["batch"][0]["event"] == "$set"


@pytest.mark.parametrize(
    "fault",
    [Fault(500), Fault(502), Fault(503), Fault(504), Fault(408), Fault(429), Fault(drop_connection=True)],
    ids=["500", "502", "503", "504", "408", "429", "dropped-connection"],
)
def test_retryable_failures_are_retried_until_accepted(fault, server, fast_pipeline):
    server.fail_next(fault, fault)
    uuid = posthog.set("u", {"a": 1})
    assert fast_pipeline.flush()
    assert [r.answered for r in server.requests] == [fault.status if not fault.drop_connection else 0] * 2 + [200]
    assert [e["uuid"] for e in server.events] == [uuid]
    assert posthog.drop_counts() == {}


def test_retry_after_seconds_is_honoured(server, fast_pipeline):
    server.fail_next(Fault(429, headers={"Retry-After": "1"}))
    posthog.set("u", {"a": 1})
    started = time.monotonic()
    fast_pipeline.flush()
    assert time.monotonic() - started >= 1.0
    assert len(server.events) == 1


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_client_errors_are_not_retried(status, server, fast_pipeline, caplog):
    server.fail_next(Fault(status, body='{"error": "bad"}'))
    posthog.set("u", {"a": 1})
    fast_pipeline.flush()
    assert len(server.requests) == 1
    assert posthog.drop_counts() == {"rejected": 1}
    assert "PostHog rejected 1 event(s) (HTTP %d" % status in caplog.text


def test_invalid_key_is_logged_once_and_redacted(server, provider, caplog):
    pipeline = posthog.configure(
        exporter=PostHogLogExporter(api_key=API_KEY, host=server.url, retry_policy=FAST, spool=False),
        logger_provider=provider,
    )
    server.fail_next(Fault(401), Fault(401))
    posthog.set("u", {"a": 1})
    pipeline.flush()
    posthog.set("u", {"a": 2})
    pipeline.flush()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "refused the project API key phc_...vw" in errors[0].getMessage()
    assert API_KEY not in caplog.text
    assert posthog.drop_counts() == {"unauthorized": 2}
    assert len(server.requests) == 2


@pytest.mark.slow
@pytest.mark.xdist_group("timing")
def test_export_returns_while_posthog_holds_the_request(server, provider, tmp_path):
    """A blackhole PostHog: the SDK's worker keeps exporting (nothing is lost in its queue,
    which holds 2048 records), and what PostHog does not take goes to the spool."""
    server.otherwise = lambda: Fault(hold=True)
    pipeline = posthog.configure(api_key=API_KEY, host=server.url, logger_provider=provider, spool_dir=str(tmp_path))
    uuids = [posthog.set("u", {"n": i}) for i in range(5000)]
    assert pipeline.flush(timeout_millis=10_000) is False  # held, not delivered
    stats = pipeline.exporter.stats()
    assert stats["spooled"] == 5000 and stats["memory_events"] == 0
    assert posthog.drop_counts() == {}
    assert len(server.requests) <= 1 and None not in uuids  # one request, still held


def test_a_request_posthog_holds_is_spooled_after_spool_after(server, provider, tmp_path):
    """Nothing else to do, one request held: after spool_after it is on disk all the same,
    claimed by us, so a SIGKILL now would not lose it."""
    server.otherwise = lambda: Fault(hold=True)
    pipeline = posthog.configure(exporter=PostHogLogExporter(api_key=API_KEY, host=server.url, spool_after=0.2,
                                 spool_dir=str(tmp_path)), logger_provider=provider, schedule_delay_millis=50)  # fmt: skip
    uuids = [posthog.set("u", {"n": n}) for n in range(3)]
    _wait_until(lambda: pipeline.exporter.stats()["spooled"] == 3, timeout=30)
    (claimed,) = [p for p in tmp_path.rglob("*.claimed")]
    assert [e["uuid"] for e in json.loads(claimed.read_text())["events"]] == uuids


def test_without_the_spool_a_request_is_given_up_after_max_attempts(server, provider, caplog):
    pipeline = posthog.configure(
        exporter=PostHogLogExporter(
            api_key=API_KEY, host=server.url, retry_policy=dataclasses.replace(FAST, max_attempts=3), spool=False
        ),
        logger_provider=provider,
    )
    server.fail_next(*[Fault(503)] * 100)
    posthog.set("u", {"a": 1})
    assert pipeline.flush() is True  # nothing left waiting: given up
    assert [r.answered for r in server.requests] == [503, 503, 503]
    assert posthog.drop_counts() == {"delivery_failed": 1}
    assert "dropped because the spool is off" in caplog.text


def test_shutdown_during_a_long_backoff_spools_and_returns(server, provider, tmp_path):
    pipeline = posthog.configure(api_key=API_KEY, host=server.url, logger_provider=provider, spool_dir=str(tmp_path))
    server.fail_next(Fault(503, headers={"Retry-After": "30"}))
    uuid = posthog.set("u", {"a": 1})
    _wait_until(lambda: len(server.requests) == 1 and pipeline.exporter.stats()["retried"] == 1, timeout=30)
    pipeline.shutdown()  # returns without waiting out the 30 s
    assert len(server.requests) == 1
    (batch,) = [p for p in tmp_path.rglob("*.json")]
    assert [e["uuid"] for e in json.loads(batch.read_text())["events"]] == [uuid]


def test_shutdown_with_nothing_pending_does_not_wait_for_the_stall_limit(server, provider, tmp_path, monkeypatch):
    # The stall limit and the spool's poll set to an hour: if shutdown waited for either (as it once did, 1 s at
    # every exit), the join fails.
    monkeypatch.setattr("posthog_otel._delivery.exit.EXIT_STALL", 3600.0)
    monkeypatch.setattr("posthog_otel._delivery.spool_access.SPOOL_POLL", 3600.0)
    pipeline = posthog.configure(api_key=API_KEY, host=server.url, logger_provider=provider, spool_dir=str(tmp_path))
    posthog.set("u", {"a": 1})
    _wait_until(lambda: len(server.events) == 1, timeout=30)  # delivered by the schedule: no flush, whose
    # "look at the spool now" would also wake the dispatcher and hide the bug
    closing = threading.Thread(target=pipeline.exporter.shutdown, args=(3_600_000,))
    closing.start()
    closing.join(60)  # a safety net: the shutdown itself takes milliseconds
    assert not closing.is_alive()
    assert len(server.events) == 1


@pytest.mark.parametrize("header", [None, "0"], ids=["no-retry-after", "retry-after-0"])
def test_exit_tries_once_more_at_once_unless_posthog_said_to_wait(header, server, provider, tmp_path):
    slow = RetryPolicy(backoff_base=30.0, backoff_max=30.0, flaky_max=30.0)  # our own backoff: far away
    pipeline = posthog.configure(
        exporter=PostHogLogExporter(api_key=API_KEY, host=server.url, retry_policy=slow, spool_dir=str(tmp_path)),
        logger_provider=provider, schedule_delay_millis=50,
    )  # fmt: skip
    server.fail_next(Fault(503, headers={"Retry-After": header} if header else {}))
    uuid = posthog.set("u", {"a": 1})
    _wait_until(lambda: pipeline.exporter.stats()["retried"] == 1, timeout=30)
    pipeline.shutdown()  # PostHog is back, and did not ask for time: delivered at exit, not spooled
    assert [e["uuid"] for e in server.events] == [uuid]
    assert not list(tmp_path.rglob("*.json"))


def test_an_sdk_force_flush_waits_until_delivered(server, tmp_path):
    """The SDK's processors never ask the exporter to flush; an application's force_flush on
    a plain BatchLogRecordProcessor still means: delivered (or safe in the spool)."""
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(shutdown_on_exit=False)
    exporter = PostHogLogExporter(api_key=API_KEY, host=server.url, spool_dir=str(tmp_path))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    posthog._emit.emitter.bind(provider)
    server.otherwise = lambda: Fault(delay=0.3)
    uuid = posthog.set("u", {"a": 1})
    provider.force_flush()
    assert [e["uuid"] for e in server.events] == [uuid]
    provider.shutdown()


def test_events_over_the_size_limit_are_dropped_alone(server, pipeline, caplog):
    posthog.set("u", {"big": "x" * MAX_EVENT_BYTES})
    posthog.set("u", {"small": 1})
    pipeline.flush()
    assert [e["$set"] for e in server.events] == [{"small": 1}]
    assert posthog.drop_counts() == {"too_large": 1}
    assert "too large for PostHog" in caplog.text


def test_large_batches_are_split_into_requests_under_5_mib(server, pipeline):
    chunk = "y" * (800 * 1024)
    uuids = [posthog.set("u", {"i": i, "pad": chunk}) for i in range(8)]
    pipeline.flush()
    assert len(server.requests) >= 2
    assert all(len(json.dumps(r.payload)) < 5 * 1024 * 1024 for r in server.requests)
    assert [e["uuid"] for e in server.events] == uuids


def test_unicode_and_lone_surrogates_do_not_break_a_batch(server, pipeline):
    posthog.set("u", {"name": "Zoë 🦔", "broken": "a\ud800b"})
    pipeline.flush()
    (event,) = server.events
    assert event["$set"] == {"name": "Zoë 🦔"}  # text with surrogates is dropped (docs/schema.md), never "a?b"
    assert posthog.drop_counts()["invalid_property"] == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_delivers_on_its_own_connection(server, provider, pipeline):
    posthog.set("parent", {"when": "before fork"})
    pipeline.flush()
    pid = os.fork()
    if pid == 0:  # the child: emit, flush, leave without running the parent's atexit
        code = 1
        try:
            posthog.set("child", {"when": "in child"})
            code = 0 if pipeline.flush() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    posthog.set("parent", {"when": "after fork"})
    pipeline.flush()
    assert sorted(e["$set"]["when"] for e in server.events) == ["after fork", "before fork", "in child"]
    assert all(r.answered == 200 for r in server.requests)


def _wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_413_splits_the_batch_and_sends_the_halves_in_order(server, pipeline):
    uuids = [posthog.set("u", {"i": i}) for i in range(4)]
    server.fail_next(Fault(413))
    pipeline.flush()
    assert [r.answered for r in server.requests] == [413, 200, 200]
    assert [len(r.payload["batch"]) for r in server.requests] == [4, 2, 2]
    assert [e["uuid"] for e in server.events] == uuids


def test_413_for_a_single_event_drops_it_with_a_warning(server, pipeline, caplog):
    posthog.set("u", {"a": 1})
    server.fail_next(Fault(413))
    pipeline.flush()
    assert server.events == []
    assert posthog.drop_counts() == {"too_large": 1}
    assert "too large for PostHog" in caplog.text


def test_operations_after_shutdown_are_refused_and_counted(server, pipeline, caplog):
    assert posthog.set("u", {"a": 1}) is not None
    pipeline.shutdown()
    assert posthog.set("u", {"a": 2}) is None
    assert posthog.capture("u", "e") is None
    assert posthog.drop_counts() == {"after_shutdown": 2}
    assert "after the PostHog exporter shut down" in caplog.text
    assert len(server.events) == 1


class _HeldExporter(PostHogLogExporter):
    """Holds the SDK's worker in its first export until told, so the SDK's queue overflows."""

    def __init__(self, **settings):
        super().__init__(**settings)
        import threading

        self.entered, self.release = threading.Event(), threading.Event()

    def export(self, batch):
        self.entered.set()
        self.release.wait(30)
        return super().export(batch)


def test_what_the_sdks_queue_drops_is_counted(server, provider, caplog):
    exporter = _HeldExporter(api_key=API_KEY, host=server.url)
    pipeline = posthog.configure(exporter=exporter, logger_provider=provider, max_queue_size=100,
                                 max_export_batch_size=10, schedule_delay_millis=10)  # fmt: skip
    uuids = [posthog.set("u", {"n": 0})]
    assert exporter.entered.wait(30)
    uuids += [posthog.set("u", {"n": n}) for n in range(1, 1000)]  # the queue holds 100
    exporter.release.set()
    pipeline.flush()
    arrived = {e["uuid"] for e in server.events}
    assert 0 < len(arrived) < 1000
    assert posthog.drop_counts() == {"otel_queue_full": 1000 - len(arrived)}
    assert "OTEL_BLRP_MAX_QUEUE_SIZE" in caplog.text


class _RecordingPolicy(RetryPolicy):
    def wait_after(self, failures, retry_after, rand=None, flaky=False):
        self.seen.append(failures)
        return 0.01


def test_backoff_starts_over_after_any_success(server, provider):
    policy = _RecordingPolicy()
    object.__setattr__(policy, "seen", [])
    pipeline = posthog.configure(
        exporter=PostHogLogExporter(api_key=API_KEY, host=server.url, retry_policy=policy),
        logger_provider=provider,
    )
    server.fail_next(Fault(503), Fault(503), Fault(503))
    posthog.set("u", {"a": 1})
    assert pipeline.flush()
    server.fail_next(Fault(503))
    posthog.set("u", {"a": 2})
    assert pipeline.flush()
    assert policy.seen == [1, 2, 3, 1]


@pytest.mark.parametrize("status", [401, 403, 400])
@pytest.mark.parametrize("spool", [True, False])
def test_a_page_that_echoes_the_key_never_puts_it_in_the_log(status, spool, server, provider, caplog):
    echo = json.dumps({"error": "refused", "request": {"api_key": API_KEY, "headers": {"Authorization": API_KEY}}})
    server.fail_next(*[Fault(status, body=echo)] * 3)
    pipeline = posthog.configure(
        exporter=PostHogLogExporter(api_key=API_KEY, host=server.url, retry_policy=FAST, spool=spool),
        logger_provider=provider,
    )
    caplog.set_level(logging.DEBUG, logger="posthog_otel")
    posthog.set("u", {"a": 1})
    pipeline.flush(timeout_millis=2000)
    pipeline.shutdown()
    assert caplog.records and API_KEY not in caplog.text
    assert API_KEY[4:-2] not in caplog.text


@pytest.mark.slow
@pytest.mark.xdist_group("timing")
@pytest.mark.parametrize("spool", [True, False])
def test_memory_stays_bounded_under_a_100000_event_backlog(spool, server, provider, tmp_path):
    """PostHog down while 100,000 operations (33 MB of JSON) are made: with the spool they go
    to disk, without it memory keeps at most MEMORY_MAX_BYTES of them and drops the oldest."""
    import tracemalloc

    from posthog_otel._delivery.dispatch import MEMORY_MAX_BYTES

    server.otherwise = lambda: Fault(503)
    policy = RetryPolicy(backoff_base=0.5, backoff_max=1.0, max_attempts=1 << 30)  # keep retrying: a backlog builds
    pipeline = posthog.configure(
        exporter=PostHogLogExporter(
            api_key=API_KEY, host=server.url, retry_policy=policy, spool_after=0.2, spool=spool, spool_dir=str(tmp_path)
        ),  # fmt: skip
        logger_provider=provider,
    )
    payload = {"plan": "enterprise", "seats": 250, "region": "eu-west-1", "note": "x" * 200}
    ours = [tracemalloc.Filter(True, "*/posthog_otel/*")]
    tracemalloc.start(1)  # the frame that allocated: ours, or not
    try:
        before = tracemalloc.take_snapshot().filter_traces(ours)
        uuids = [posthog.set("user-%d" % (n % 1000), dict(payload, n=n)) for n in range(100_000)]
        pipeline.processor._batch.force_flush()
        _wait_until(lambda: pipeline.exporter.stats()["handoff_records"] == 0, timeout=120)
        after = tracemalloc.take_snapshot().filter_traces(ours)
    finally:
        tracemalloc.stop()
    held = sum(sys.getsizeof(u) for u in uuids)  # the returned uuids this test keeps
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename")) - held
    stats = pipeline.exporter.stats()
    assert stats["memory_bytes"] <= MEMORY_MAX_BYTES
    assert grown < (2 if spool else MEMORY_MAX_BYTES / 2**20 + 4) * 2**20, grown  # all in memory: 33 MB and more
    server.otherwise = lambda: Fault()
    assert pipeline.flush(timeout_millis=120_000)
    arrived = [e["uuid"] for e in server.events]
    if spool:
        assert arrived == uuids  # all of them, in order
        assert posthog.drop_counts() == {}
    else:
        dropped = posthog.drop_counts()["memory_full"]
        assert dropped > 0 and len(arrived) + dropped == len(uuids)
        head = next(i for i, (a, b) in enumerate(zip(arrived, uuids)) if a != b)
        # the request being retried keeps its events; behind it, the oldest waiting went first
        assert arrived == uuids[:head] + uuids[head + dropped :]


def test_force_flush_of_a_new_exporter_waits_for_the_spool_it_inherits(server, tmp_path):
    """An earlier process left a batch; a drain script's first force_flush must deliver it, not
    answer True before the exporter's thread has even looked at the spool."""
    from posthog_otel._delivery.spool import DiskSpool, spool_directory

    settings = posthog.Settings.resolve(api_key=API_KEY, host=server.url, spool_dir=str(tmp_path))
    left = {"event": "$set", "uuid": "0190f4c1-0000-7000-8000-000000000001", "distinct_id": "u",
            "timestamp": "2024-01-01T00:00:00+00:00", "properties": {}, "$set": {"a": 1}}  # fmt: skip
    from posthog_otel._delivery.encoding import EncodedBatch

    DiskSpool(spool_directory(settings), 1 << 30, 3600).append(EncodedBatch.encode([left])[0])
    server.otherwise = lambda: Fault(delay=0.5)  # answered, but not at once
    exporter = PostHogLogExporter(api_key=API_KEY, host=server.url, spool_dir=str(tmp_path))
    try:
        assert exporter.force_flush(60_000) is True
        assert [e["uuid"] for e in server.events] == [left["uuid"]]
    finally:
        exporter.shutdown()


def test_flush_returns_at_once_when_posthog_refuses_the_key_and_says_so(server, provider, tmp_path, caplog):
    """A wrong key: the events wait in the spool for the next attempt (a minute away), and no
    wait within the flush's timeout can change that: flush() says so and returns False at once."""
    pipeline = posthog.configure(api_key=API_KEY, host=server.url, logger_provider=provider, spool_dir=str(tmp_path),
                                 schedule_delay_millis=50)  # fmt: skip
    server.otherwise = lambda: Fault(401)
    posthog.set("u", {"a": 1})
    result = []
    flushing = threading.Thread(target=lambda: result.append(pipeline.flush(timeout_seconds=600)), daemon=True)
    flushing.start()
    flushing.join(60)  # a safety net: it returns after one answer, not after 600 s
    assert not flushing.is_alive() and result == [False]
    said = [r.getMessage() for r in caplog.records if "flush:" in r.getMessage()]
    assert len(said) == 1 and "refused the project API key phc_...vw" in said[0] and "POSTHOG_API_KEY" in said[0]
    assert pipeline.exporter.stats()["spool_batches"] == 1  # kept, for when the key is accepted
    assert posthog.drop_counts() == {}


def test_configure_queues_as_much_as_posthogs_sdk(server, provider):
    """PostHog's SDK queues 10,000 operations; so does configure()'s batch processor (the OTel
    SDK's own default, 2048, drops the oldest of a burst its worker has not taken yet)."""
    exporter = _HeldExporter(api_key=API_KEY, host=server.url)
    pipeline = posthog.configure(exporter=exporter, logger_provider=provider, schedule_delay_millis=10)
    uuids = [posthog.set("u", {"n": 0})]
    assert exporter.entered.wait(30)  # the SDK's worker is held: everything else waits in its queue
    uuids += [posthog.set("u", {"n": n}) for n in range(1, 10_001)]
    exporter.release.set()
    assert pipeline.flush()
    assert [e["uuid"] for e in server.events] == uuids
    assert posthog.drop_counts() == {}
