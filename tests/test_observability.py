"""Self-observability: counters from the exporter and as OTel metrics; the shutdown summary."""

from __future__ import annotations

import logging
import time
import weakref

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import posthog_otel as posthog
from posthog_otel import PostHogLogExporter, RetryPolicy, _stats

from .conftest import API_KEY
from .support import Fault

FAST = RetryPolicy(backoff_base=0.01, backoff_max=0.05)


def test_stats_count_exported_retried_spooled_and_dropped(server, provider):
    pipeline = posthog.configure(
        exporter=PostHogLogExporter(api_key=API_KEY, host=server.url, retry_policy=FAST, spool_after=0.3),
        logger_provider=provider,
        schedule_delay_millis=50,
    )
    server.fail_next(Fault(503))
    posthog.set("u", {"a": 1})
    posthog.set("u", {})  # dropped at the call: no properties
    pipeline.flush()
    stats = pipeline.exporter.stats()
    assert stats["exported"] == 1 and stats["retried"] == 1 and stats["spooled"] == 0
    assert stats["dropped"] == {"no_properties": 1}
    server.otherwise = lambda: Fault(503)
    posthog.set("u", {"a": 2})
    assert pipeline.flush(timeout_millis=500) is False  # PostHog keeps failing
    _wait_until(lambda: pipeline.exporter.stats()["spooled"] == 1)
    stats = pipeline.exporter.stats()
    assert stats["spooled"] == 1 and stats["spool_batches"] == 1 and stats["spool_oldest_age_seconds"] >= 0
    server.otherwise = lambda: Fault()
    assert pipeline.flush()
    stats = pipeline.exporter.stats()
    assert stats["drained"] == 1 and stats["exported"] == 2 and stats["spool_batches"] == 0


def test_metrics_on_the_meter_posthog_otel(server, provider, monkeypatch):
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(metrics, "get_meter", meter_provider.get_meter)
    monkeypatch.setattr(_stats, "_registered", weakref.WeakSet())  # instruments are made once per process
    pipeline = posthog.configure(api_key=API_KEY, host=server.url, logger_provider=provider)
    posthog.set("u", {"a": 1})
    posthog.set(None, {"a": 1})  # dropped: no distinct id
    pipeline.flush()
    data = reader.get_metrics_data()
    (scope,) = [s for r in data.resource_metrics for s in r.scope_metrics if s.scope.name == "posthog_otel"]
    points = {m.name: list(m.data.data_points) for m in scope.metrics}
    assert points["posthog_otel.events.exported"][0].value == 1
    assert {(p.attributes["reason"], p.value) for p in points["posthog_otel.events.dropped"]} == {("no_distinct_id", 1)}
    assert points["posthog_otel.spool.batches"][0].value == 0
    meter_provider.shutdown()


def test_shutdown_logs_a_summary_when_anything_was_dropped(server, provider, caplog):
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    pipeline = posthog.configure(api_key=API_KEY, host=server.url, logger_provider=provider)
    posthog.set("u", {"a": 1})
    posthog.alias("", "u")
    pipeline.shutdown()
    assert "1 event(s) exported; dropped: no_distinct_id=1" in caplog.text


def test_no_summary_when_nothing_was_dropped(server, provider, caplog):
    pipeline = posthog.configure(api_key=API_KEY, host=server.url, logger_provider=provider)
    posthog.set("u", {"a": 1})
    pipeline.shutdown()
    assert "dropped" not in caplog.text


def _wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_second_exporter_built_later_makes_no_false_drop(server, pipeline):
    """Building an exporter takes a look at the sequence (where it starts judging); that look is
    no record, so the exporter already running must not count it as one the SDK dropped."""
    from posthog_otel import PostHogSpanExporter

    posthog.set("u", {"n": 1})
    spans = PostHogSpanExporter(api_key=API_KEY, host=server.url)
    second = PostHogLogExporter(api_key=API_KEY, host=server.url)
    posthog.set("u", {"n": 2})
    assert pipeline.flush()
    assert [e["$set"]["n"] for e in server.events] == [1, 2]
    assert posthog.drop_counts() == {}
    spans.shutdown()
    second.shutdown()


def test_an_exporter_that_never_saw_the_operations_counts_none_of_them_at_its_shutdown(server, pipeline):
    """The last exporter to shut down counts the operations it never saw as lost at shutdown;
    one on no provider (or another one) never saw any, and must not count them all."""
    idle = PostHogLogExporter(api_key=API_KEY, host=server.url)
    uuids = [posthog.set("u", {"n": n}) for n in range(3)]
    assert pipeline.flush()
    pipeline.shutdown()
    idle.shutdown()  # the last one
    assert [e["uuid"] for e in server.events] == uuids
    assert posthog.drop_counts() == {}
