"""Bursts and slow or flaky PostHogs: nothing lost uncounted, nothing reordered, nothing twice.

Each scenario runs twice: with ``configure()`` (in this process, its queue 10,000 records, as
PostHog's SDK) and with the plain ``BatchLogRecordProcessor(PostHogLogExporter())`` that
``opentelemetry-instrument`` builds (in a child process, set up the way the README shows: the
SDK's queue of 2048 records). Rates are paced by the producer.

What is asserted does not depend on timing. Every returned uuid arrives exactly once, each
person's operations in the order they were made, or is counted: whether the SDK's worker gets
the CPU before its queue fills is the machine's business (a busy 2-core machine may not give it),
so where more operations are made than the queue holds, ``delivered + counted == made``
(``otel_queue_full`` the only reason); where the queue holds them all, nothing is counted.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap
import time
from collections import defaultdict

import pytest

import posthog_otel as posthog

from .conftest import API_KEY
from .support import Fault, child_env

#: Timing matters here (a tight loop against the SDK's queue): these run one after another on
#: one pytest-xdist worker, never beside each other.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("timing")]

USERS = 10
ROOT = pathlib.Path(__file__).resolve().parent.parent

SCENARIOS = {
    # name: (operations, rate per second or None for a tight loop, what the server does)
    "burst-5000": (5_000, None, lambda server: None),
    "burst-20000": (20_000, None, lambda server: None),
    "slow-2s": (20_000, 2_000, lambda server: setattr(server, "otherwise", lambda: Fault(delay=2.0))),
    "flaky-30pct-503": (20_000, 2_000, lambda server: server.fail_randomly(0.3, Fault(503), seed=1)),
    "slow-1.5s-and-flaky-30pct": (
        10_000, 2_000, lambda server: server.fail_randomly(0.3, Fault(503, delay=1.5), seed=2, delay=1.5),
    ),
}  # fmt: skip


def produce(emit, total, rate):
    """``set(user-k, {"seq": n})`` for ten users round robin, paced at ``rate`` a second."""
    uuids = []
    started = time.monotonic()
    for n in range(total):
        uuids.append(emit("user-%d" % (n % USERS), {"seq": n}))
        if rate and n % 50 == 49:
            time.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
    return uuids


def assert_delivered_or_counted_in_order(server, uuids, dropped, queue):
    """Every uuid arrived once, in order per person, or was counted as dropped by the SDK's full
    queue; nothing counted when the queue could hold every operation."""
    assert None not in uuids
    counted = dropped.get("otel_queue_full", 0)
    assert set(dropped) <= {"otel_queue_full"}, dropped
    if len(uuids) <= queue:
        assert counted == 0
    server.wait_for_events(len(uuids) - counted, timeout=120)
    assert server.wait_idle(timeout=60)
    events = server.events
    arrived = [e["uuid"] for e in events]
    assert len(arrived) == len(set(arrived)), "duplicates"
    assert set(arrived) <= set(uuids)
    assert len(arrived) + counted == len(uuids), "%d made, %d arrived, %d counted" % (len(uuids), len(arrived), counted)
    last = defaultdict(lambda: -1)
    for event in events:
        user, seq = event["distinct_id"], event["$set"]["seq"]
        assert seq > last[user], "%s: seq %d arrived after %d" % (user, seq, last[user])
        last[user] = seq


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_configure_loses_nothing(scenario, server, provider):
    total, rate, arrange = SCENARIOS[scenario]
    arrange(server)
    pipeline = posthog.configure(api_key=API_KEY, host=server.url, logger_provider=provider)
    uuids = produce(posthog.set, total, rate)
    assert pipeline.flush(timeout_seconds=None)
    assert_delivered_or_counted_in_order(server, uuids, posthog.drop_counts(), queue=10_000)


PLAIN_APP = textwrap.dedent(
    """
    import json, sys
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    import posthog_otel as posthog
    from posthog_otel import PostHogLogExporter
    from tests.test_load import produce

    provider = LoggerProvider()
    exporter = PostHogLogExporter()
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    set_logger_provider(provider)

    total, rate = int(sys.argv[1]), float(sys.argv[2]) or None
    print(json.dumps(produce(posthog.set, total, rate)), flush=True)
    provider.force_flush()  # everything exported: delivered, or in the spool
    assert exporter.force_flush(120_000)  # delivered; and the last gaps in the numbers judged
    print(json.dumps(posthog.drop_counts()), flush=True)
    sys.stdin.readline()  # a service keeps running: the test says when it has looked
    """
)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_plain_batch_processor_loses_nothing(scenario, server, tmp_path):
    total, rate, arrange = SCENARIOS[scenario]
    arrange(server)
    env = child_env(POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url, POSTHOG_OTEL_SPOOL_DIR=str(tmp_path))
    app = subprocess.Popen(
        [sys.executable, "-c", PLAIN_APP, str(total), str(rate or 0)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(ROOT),
    )  # fmt: skip
    try:
        uuids = json.loads(app.stdout.readline())
        dropped = json.loads(app.stdout.readline())
        assert_delivered_or_counted_in_order(server, uuids, dropped, queue=2048)
    finally:
        app.stdin.close()
        app.wait(timeout=60)
    assert app.returncode == 0
