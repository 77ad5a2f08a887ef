"""The durable spool: order, claims across processes, bounds, corruption, recovery."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time


import posthog_otel as posthog
from posthog_otel import PostHogLogExporter, RetryPolicy
from posthog_otel._dispatch import spool_directory
from posthog_otel._spool import DiskSpool, MemorySpool, open_spool

from .conftest import API_KEY
from .support import CaptureServer, Fault, child_env, free_port

FAST = RetryPolicy(backoff_base=0.01, backoff_max=0.05)
BIG = 1 << 40
WEEK = 7 * 24 * 3600.0


def events(*names):
    return [{"event": n, "uuid": n, "distinct_id": "u", "properties": {}, "timestamp": "t"} for n in names]


# --- the spool on its own -------------------------------------------------------------------


def test_batches_come_out_oldest_first_and_are_deleted_when_done(tmp_path):
    spool = DiskSpool(tmp_path, BIG, WEEK)
    spool.append(events("a"))
    spool.append(events("b"))
    first = spool.claim_oldest()
    assert [e["event"] for e in first.events] == ["a"]
    assert spool.claim_oldest() is None  # the oldest is taken: nobody may skip ahead of it
    first.done()
    second = spool.claim_oldest()
    assert [e["event"] for e in second.events] == ["b"]
    second.release()
    assert [e["event"] for e in spool.claim_oldest().events] == ["b"]


def test_release_keeps_only_what_is_left(tmp_path):
    spool = DiskSpool(tmp_path, BIG, WEEK)
    spool.append(events("a", "b", "c"))
    spool.claim_oldest().release(events("c"))
    assert [e["event"] for e in spool.claim_oldest().events] == ["c"]


def test_two_processes_never_claim_the_same_batch(tmp_path):
    spool = DiskSpool(tmp_path, BIG, WEEK)
    spool.append(events("a"))
    script = (
        "import sys, json; from posthog_otel._spool import DiskSpool;"
        "c = DiskSpool(sys.argv[1], 1 << 40, 1e9).claim_oldest();"
        "print(json.dumps(c.events if c else None))"
    )
    mine = spool.claim_oldest()
    other = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert mine is not None and json.loads(other.stdout) is None


def test_claims_of_a_dead_process_are_released(tmp_path):
    spool = DiskSpool(tmp_path, BIG, WEEK)
    spool.append(events("a"))
    child = subprocess.run(
        [sys.executable, "-c", "import sys; from posthog_otel._spool import DiskSpool;"
         "DiskSpool(sys.argv[1], 1 << 40, 1e9).claim_oldest()", str(tmp_path)],
        timeout=30,
    )  # fmt: skip
    assert child.returncode == 0
    assert any(n.endswith(".claimed") for n in os.listdir(tmp_path))
    assert [e["event"] for e in spool.claim_oldest().events] == ["a"]


def test_files_are_private_and_named_without_the_key(tmp_path):
    exporter = PostHogLogExporter(api_key=API_KEY, host="http://127.0.0.1:1", spool_dir=str(tmp_path))
    directory = spool_directory(exporter.settings)
    DiskSpool(directory, BIG, WEEK).append(events("a"))
    assert API_KEY not in str(directory)
    assert directory.stat().st_mode & 0o777 == 0o700
    (name,) = os.listdir(directory)
    assert (directory / name).stat().st_mode & 0o777 == 0o600
    assert API_KEY not in name


def test_size_cap_drops_the_oldest_and_says_how_many(tmp_path, caplog):
    spool = DiskSpool(tmp_path, 600, WEEK)
    for name in "abcdef":
        spool.append(events(name * 50))
    assert spool.depth().bytes <= 600
    remaining = spool.claim_oldest().events[0]["event"]
    assert remaining != "a" * 50
    assert posthog.drop_counts()["spool_full_or_expired"] >= 1
    assert "dropped the" in caplog.text


def test_age_limit_drops_old_batches(tmp_path):
    spool = DiskSpool(tmp_path, BIG, 0.05)
    spool.append(events("old"))
    time.sleep(0.1)
    spool.append(events("new"))
    assert [e["event"] for e in spool.claim_oldest().events] == ["new"]
    assert posthog.drop_counts() == {"spool_full_or_expired": 1}


def test_a_corrupt_file_is_moved_aside_and_reported(tmp_path, caplog):
    spool = DiskSpool(tmp_path, BIG, WEEK)
    name = "%020d-1-000000.json" % (time.time_ns() - 1000)
    (tmp_path / name).write_text("{not json")
    spool.append(events("good"))
    assert [e["event"] for e in spool.claim_oldest().events] == ["good"]
    assert os.listdir(tmp_path / "corrupt") == [name]
    assert posthog.drop_counts() == {"spool_corrupt": 1}
    assert "could not be read" in caplog.text


def test_an_unwritable_directory_falls_back_to_memory_with_one_warning(tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    spool = open_spool(blocked / "spool", BIG, WEEK)
    assert isinstance(spool, MemorySpool)
    spool.append(events("a"))
    assert [e["event"] for e in spool.claim_oldest().events] == ["a"]
    assert caplog.text.count("kept in memory") == 1


# --- the exporter with its spool --------------------------------------------------------------


def configure(url, provider, **settings):
    return posthog.configure(
        exporter=PostHogLogExporter(api_key=API_KEY, host=url, retry_policy=FAST, spool_after=0.2, **settings),
        logger_provider=provider,
        schedule_delay_millis=50,
    )


def test_outage_spools_then_everything_arrives_in_order(server, provider):
    pipeline = configure(server.url, provider)
    server.fail_next(*[Fault(503)] * 1000)
    first = [posthog.set("u", {"n": i}) for i in range(3)]
    started = time.monotonic()
    assert pipeline.flush() is False  # PostHog is down: the batch went to the spool
    assert time.monotonic() - started < 3
    later = [posthog.set("u", {"n": i}) for i in range(3, 6)]
    pipeline.processor._batch.force_flush()  # queued behind the spool, not sent ahead of it
    assert pipeline.exporter.stats()["spooled"] == 6
    server.faults.clear()
    assert pipeline.flush() is True
    assert [e["uuid"] for e in server.events] == first + later
    assert pipeline.exporter.stats()["spool_batches"] == 0
    assert posthog.drop_counts() == {}


def test_the_drainer_sends_on_its_own_when_posthog_is_back(provider):
    port = free_port()
    pipeline = configure("http://127.0.0.1:%d" % port, provider)
    uuid = posthog.set("u", {"a": 1})
    pipeline.flush()
    assert pipeline.exporter.stats()["spool_batches"] == 1
    server = CaptureServer(port=port)
    try:
        server.wait_for_events(1, timeout=15)
        assert [e["uuid"] for e in server.events] == [uuid]
    finally:
        server.close()


def test_a_refused_key_keeps_data_in_the_spool(server, provider, caplog):
    pipeline = configure(server.url, provider)
    server.fail_next(*[Fault(401)] * 100)
    uuid = posthog.set("u", {"a": 1})
    assert pipeline.flush() is False
    assert pipeline.exporter.stats()["spool_batches"] == 1
    assert [r.levelno for r in caplog.records].count(logging.ERROR) == 1
    server.faults.clear()  # the key is accepted again
    assert pipeline.flush() is True
    assert [e["uuid"] for e in server.events] == [uuid]


SCRIPT = """
import sys, time
import posthog_otel as posthog
posthog.configure(api_key=sys.argv[1], host=sys.argv[2], spool_after=0.2, schedule_delay_millis=50)
for i in range(int(sys.argv[3])):
    posthog.set("user", {"n": i})
if sys.argv[4] == "wait":
    print("ready", flush=True)
    time.sleep(60)
"""


def run_script(url, count, mode, spool_dir, **popen):
    env = child_env(POSTHOG_OTEL_SPOOL_DIR=spool_dir)
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, API_KEY, url, str(count), mode], env=env, text=True, **popen
    )


def test_a_script_that_exits_while_posthog_is_down_loses_nothing(tmp_path):
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    assert run_script(url, 5, "exit", str(tmp_path)).wait(timeout=60) == 0
    server = CaptureServer(port=port)
    try:
        assert run_script(url, 0, "exit", str(tmp_path)).wait(timeout=60) == 0  # the next run sends them
        assert [e["$set"]["n"] for e in server.events] == [0, 1, 2, 3, 4]
    finally:
        server.close()


def test_sigterm_while_posthog_is_down_spools_the_queue(tmp_path):
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    process = run_script(url, 5, "wait", str(tmp_path), stdout=subprocess.PIPE)
    assert process.stdout.readline().strip() == "ready"
    process.terminate()
    assert process.wait(timeout=30) == 128 + 15
    server = CaptureServer(port=port)
    try:
        assert run_script(url, 0, "exit", str(tmp_path)).wait(timeout=60) == 0
        assert [e["$set"]["n"] for e in server.events] == [0, 1, 2, 3, 4]
    finally:
        server.close()


def test_spool_can_be_turned_off(server, provider):
    pipeline = configure(server.url, provider, spool=False)
    server.fail_next(*[Fault(503)] * 100)
    posthog.set("u", {"a": 1})
    pipeline.flush()
    assert posthog.drop_counts() == {"delivery_failed": 1}
    assert pipeline.exporter.stats()["spool_batches"] == 0
