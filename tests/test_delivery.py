"""Delivery to a real loopback server that injects faults: retries, limits, keys, fork."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time

import pytest
from opentelemetry.sdk._logs import LoggerProvider

import posthog_otel as posthog
from posthog_otel import PostHogLogExporter, RetryPolicy
from posthog_otel._encoding import MAX_EVENT_BYTES

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
    _wait_until(lambda: len(server.requests) == 1 and pipeline.exporter.stats()["retried"] == 1)
    pipeline.shutdown()  # returns without waiting out the 30 s
    assert len(server.requests) == 1
    (batch,) = [p for p in tmp_path.rglob("*.json")]
    assert [e["uuid"] for e in json.loads(batch.read_text())["events"]] == [uuid]


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
    assert event["$set"]["name"] == "Zoë 🦔"
    assert event["$set"]["broken"] in ("a?b", "a\ufffdb")


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
