"""The SDK's queue never overflows: bursts and slow or flaky PostHogs lose nothing and reorder nothing.

Each scenario runs twice: with ``configure()`` (in this process) and with the plain
``BatchLogRecordProcessor(PostHogLogExporter())`` that ``opentelemetry-instrument`` builds (in a
child process, set up the way the README shows). Both use the SDK's default queue (2048
records) and delay (1 s). Rates are paced by the producer; what is asserted (every returned
uuid arrives exactly once, each person's operations in the order they were made, nothing
counted as dropped) does not depend on timing.
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


def assert_all_arrived_in_order(server, uuids):
    assert None not in uuids
    events = server.wait_for_events(len(uuids), timeout=120)
    arrived = [e["uuid"] for e in events]
    missing = set(uuids) - set(arrived)
    assert not missing, "%d of %d operations lost" % (len(missing), len(uuids))
    assert len(arrived) == len(set(arrived)) == len(uuids), "duplicates"
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
    pipeline.flush()
    assert_all_arrived_in_order(server, uuids)
    assert posthog.drop_counts() == {}


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
    provider.add_log_record_processor(BatchLogRecordProcessor(PostHogLogExporter()))
    set_logger_provider(provider)

    total, rate = int(sys.argv[1]), float(sys.argv[2]) or None
    print(json.dumps(produce(posthog.set, total, rate)), flush=True)
    sys.stdin.readline()  # a service keeps running: the test says when PostHog has everything
    provider.force_flush()
    print(json.dumps(posthog.drop_counts()), flush=True)
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
        server.wait_for_events(len(uuids), timeout=120)
        app.stdin.write("report\n")
        app.stdin.flush()
        dropped = json.loads(app.stdout.readline())
    finally:
        app.stdin.close()
        app.wait(timeout=60)
    assert_all_arrived_in_order(server, uuids)
    assert dropped == {}
    assert app.returncode == 0
