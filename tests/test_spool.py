"""The durable spool: order, claims across processes, bounds, and whatever it finds on disk."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

import posthog_otel as posthog
from posthog_otel import PostHogLogExporter, RetryPolicy
from posthog_otel._delivery import spool_access as _spool_access
from posthog_otel._delivery.encoding import EncodedBatch
from posthog_otel._delivery.spool import BUSY, NOTHING_WAITING, Claim, DiskSpool, SpoolUnavailable, spool_directory

from .conftest import API_KEY
from .support import Fault, child_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = RetryPolicy(backoff_base=0.01, backoff_max=0.05, unauthorized_wait=0.05)
BIG = 1 << 40
WEEK = 7 * 24 * 3600.0


def batch(*names):
    encoded, _ = EncodedBatch.encode(
        [{"event": n, "uuid": n, "distinct_id": "u", "properties": {}, "timestamp": "t"} for n in names]
    )
    return encoded


def head_names(spool, max_bytes=BIG):
    claim = spool.claim_head(max_bytes, 1 << 30)
    assert isinstance(claim, Claim), claim
    return claim, [e["event"] for e in claim.batch.events()]


def entries(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith((".json", ".claimed")))


# --- the spool on its own -------------------------------------------------------------------


def test_batches_come_out_oldest_first_and_are_deleted_when_done(tmp_path):
    spool = DiskSpool(tmp_path, BIG, WEEK)
    spool.append(batch("a"))
    spool.append(batch("b"))
    first, names = head_names(spool, max_bytes=1)  # one batch at most
    assert names == ["a"]
    assert spool.claim_head(BIG, 1 << 30) is BUSY  # the oldest is taken: nobody may skip ahead of it
    first.done()
    second, names = head_names(spool)
    assert names == ["b"]
    second.release()
    assert head_names(spool)[1] == ["b"]


def test_a_backlog_leaves_in_large_requests(tmp_path):
    spool = DiskSpool(tmp_path, BIG, WEEK)
    for name in "abcdef":
        spool.append(batch(name))
    claim, names = head_names(spool)
    assert names == list("abcdef") and len(claim.names) == 6
    claim.done()
    assert spool.claim_head(BIG, 1 << 30) is NOTHING_WAITING


def test_release_keeps_only_what_is_left(tmp_path):
    spool = DiskSpool(tmp_path, BIG, WEEK)
    spool.append(batch("a", "b"))
    spool.append(batch("c"))
    claim, _ = head_names(spool)
    claim.release(batch("b", "c"))
    assert head_names(spool)[1] == ["b", "c"]


def test_order_does_not_follow_the_wall_clock(tmp_path, monkeypatch):
    spool = DiskSpool(tmp_path, BIG, WEEK)
    spool.append(batch("first"))
    monkeypatch.setattr(time, "time", lambda: 0.0)  # the clock stepped back to 1970
    monkeypatch.setattr(time, "time_ns", lambda: 0)
    spool.append(batch("second"))
    assert head_names(spool)[1] == ["first", "second"]


CLAIM_AND_HOLD = """
import sys, json
from posthog_otel._delivery.spool import DiskSpool, Claim
head = DiskSpool(sys.argv[1], 1 << 40, 1e9).claim_head(1 << 40, 1 << 30)
print(json.dumps(isinstance(head, Claim) and [e["event"] for e in head.batch.events()]), flush=True)
sys.stdin.readline()
"""


def test_two_processes_never_claim_the_same_batch(tmp_path):
    spool = DiskSpool(tmp_path, BIG, WEEK)
    spool.append(batch("a"))
    mine, _ = head_names(spool)
    other = subprocess.run([sys.executable, "-c", CLAIM_AND_HOLD, str(tmp_path)], input="\n",
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    assert json.loads(other.stdout) is False
    mine.done()


def test_a_claim_of_a_live_process_is_respected_and_of_a_dead_one_released(tmp_path):
    """Whatever the holder's pid (pid 1 in a container is always "alive"), a claim is held by
    a lock the kernel releases when the holder dies."""
    spool = DiskSpool(tmp_path, BIG, WEEK)
    spool.append(batch("a"))
    holder = subprocess.Popen([sys.executable, "-c", CLAIM_AND_HOLD, str(tmp_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert json.loads(holder.stdout.readline()) == ["a"]
    assert spool.claim_head(BIG, 1 << 30) is BUSY  # alive: it is sending
    holder.kill()
    holder.wait(timeout=30)
    assert head_names(spool)[1] == ["a"]  # dead: back in line, ours


def test_our_own_claim_that_nothing_holds_goes_back_in_line(tmp_path):
    spool = DiskSpool(tmp_path, BIG, WEEK)
    spool.append(batch("a"))
    claim, _ = head_names(spool)
    claim.names = []  # lost track of it (a release the disk refused)
    spool._active.clear()
    assert head_names(spool)[1] == ["a"]


def test_claims_in_the_old_pid_format_or_made_up_are_released(tmp_path):
    spool = DiskSpool(tmp_path, BIG, WEEK)
    spool.append(batch("a"))
    (name,) = entries(tmp_path)
    os.rename(tmp_path / name, tmp_path / ("%s.1.claimed" % name))  # "claimed by pid 1"
    assert head_names(spool)[1] == ["a"]


def test_files_are_private_and_named_without_the_key(tmp_path):
    exporter = PostHogLogExporter(api_key=API_KEY, host="http://127.0.0.1:1", spool_dir=str(tmp_path))
    directory = spool_directory(exporter.settings)
    DiskSpool(directory, BIG, WEEK).append(batch("a"))
    exporter.shutdown()
    assert API_KEY not in str(directory)
    assert directory.stat().st_mode & 0o777 == 0o700
    for name in os.listdir(directory):
        assert (directory / name).stat().st_mode & 0o777 == 0o600
        assert API_KEY not in name


def test_size_cap_drops_the_oldest_and_says_how_many(tmp_path, caplog):
    spool = DiskSpool(tmp_path, 600, WEEK)
    for name in "abcdef":
        spool.append(batch(name * 50))
        spool.enforce_bounds()
    assert spool.depth().bytes <= 600
    assert head_names(spool)[1][0] != "a" * 50
    assert posthog.drop_counts()["spool_full_or_expired"] >= 1
    assert "dropped the" in caplog.text


def test_age_limit_drops_old_batches(tmp_path):
    spool = DiskSpool(tmp_path, BIG, 3600)
    spool.append(batch("old"))
    (old,) = entries(tmp_path)
    os.utime(tmp_path / old, (time.time() - 7200, time.time() - 7200))
    spool.append(batch("new"))
    spool.enforce_bounds()
    assert head_names(spool)[1] == ["new"]
    assert posthog.drop_counts() == {"spool_full_or_expired": 1}


# --- what another process, user or accident can leave in the directory ----------------------


def _plant(directory, name, how):
    path = directory / name
    if how == "not json":
        path.write_text("{not json")
    elif how == "wrong shape":
        path.write_text(json.dumps({"batch": [1, 2]}))
    elif how == "events without uuids":  # e.g. a Capture V1 batch from elsewhere
        path.write_text(json.dumps({"events": [{"event": "x", "distinct_id": "u"}]}))
    elif how == "directory":
        path.mkdir()
    elif how == "dangling symlink":
        path.symlink_to(directory / "nowhere")
    elif how == "symlink to a file":
        target = directory.parent / "outside.json"
        target.write_text(json.dumps({"events": []}))
        path.symlink_to(target)
    elif how == "fifo":
        os.mkfifo(path)
    elif how == "another user's file":
        path.write_text(json.dumps({"events": []}))
        os.chown(path, 12345, 12345)
    elif how == "too large":
        with open(path, "wb") as handle:
            handle.truncate(17 * 1024 * 1024)
    elif how == "deeply nested":  # json.loads raises RecursionError, not ValueError
        path.write_text('{"events": [' + "[" * 100_000 + "]" * 100_000 + "]}")


HOSTILE = ["not json", "wrong shape", "events without uuids", "directory", "dangling symlink", "symlink to a file",
           "fifo", "another user's file", "too large", "deeply nested"]  # fmt: skip


@pytest.mark.parametrize("how", HOSTILE)
def test_an_unreadable_entry_ahead_of_real_batches_is_set_aside_and_delivery_goes_on(how, tmp_path, caplog):
    if how == "another user's file" and os.geteuid() != 0:
        pytest.skip("needs root to give a file to another user")
    spool = DiskSpool(tmp_path, BIG, WEEK)
    _plant(tmp_path, "%020d-planted.json" % 1, how)
    spool.append(batch("good"))
    assert head_names(spool)[1] == ["good"]
    assert posthog.drop_counts().get("spool_corrupt", 0) >= 1
    assert "not a batch we can send" in caplog.text


def test_a_deeply_nested_file_left_in_the_spool_never_wedges_delivery(server, provider, tmp_path):
    """Left by an earlier process (or planted): the exporter sets it aside and delivers, instead
    of counting an internal error and trying it again at once, forever, on a busy core."""
    directory = spool_directory(posthog.Settings.resolve(api_key=API_KEY, host=server.url, spool_dir=str(tmp_path)))
    DiskSpool(directory, BIG, WEEK)
    _plant(directory, "%020d-planted.json" % 1, "deeply nested")
    pipeline = configure(server.url, provider, spool_dir=str(tmp_path))
    uuid = posthog.set("u", {"a": 1})
    assert pipeline.flush(timeout_millis=10_000)
    assert [e["uuid"] for e in server.events] == [uuid]
    assert posthog.drop_counts() == {"spool_corrupt": 1}
    assert os.listdir(directory / "corrupt") == ["%020d-planted.json" % 1]


def test_a_claim_with_a_malformed_name_and_foreign_files_are_ignored(tmp_path, caplog):
    spool = DiskSpool(tmp_path, BIG, WEEK)
    (tmp_path / "00000000000000000001-x.json.claimed").write_text("{}")
    (tmp_path / "notes.txt").write_text("hello")
    spool.append(batch("good"))
    assert head_names(spool)[1] == ["good"]
    assert "not a spool file; ignored" in caplog.text


def test_a_directory_others_could_tamper_with_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # writable by everyone, no sticky bit
    with pytest.raises(SpoolUnavailable, match="writable by other users"):
        DiskSpool(shared / "spool", BIG, WEEK)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "link").symlink_to(elsewhere)
    with pytest.raises(SpoolUnavailable, match="symbolic link"):
        DiskSpool(tmp_path / "link", BIG, WEEK)
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, 12345, 12345)
        with pytest.raises(SpoolUnavailable, match="another user"):
            DiskSpool(theirs, BIG, WEEK)


def test_a_refused_directory_means_memory_with_one_warning(server, provider, tmp_path, caplog):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    pipeline = configure(server.url, provider, spool_dir=str(shared))
    uuid = posthog.set("u", {"a": 1})
    assert pipeline.flush()
    assert [e["uuid"] for e in server.events] == [uuid]
    assert caplog.text.count("cannot use the spool directory") == 1


@pytest.fixture
def tmpfs(tmp_path):
    """A real filesystem of our own, to remount read-only or fill (needs root, as in CI)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.slow
def test_a_read_only_remount_mid_run_falls_back_to_memory(server, provider, tmpfs, caplog, monkeypatch):
    monkeypatch.setattr(_spool_access, "SPOOL_RETRY", 0.5)
    pipeline = configure(server.url, provider, spool_dir=str(tmpfs))
    server.otherwise = lambda: Fault(503)
    first = posthog.set("u", {"n": 1})
    _wait_until(lambda: pipeline.exporter.stats()["spooled"] == 1)
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    second = posthog.set("u", {"n": 2})
    assert pipeline.flush(timeout_millis=500) is False  # never raises
    assert "cannot use the spool" in caplog.text
    server.otherwise = lambda: Fault()
    server.wait_for_events(2, timeout=30)  # both flow, in order, though the disk is read-only
    assert [e["uuid"] for e in server.events] == [first, second]
    subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    assert pipeline.flush(timeout_millis=60_000)  # the delivered batch's file is removed, not sent again
    assert [e["uuid"] for e in server.events] == [first, second]
    assert pipeline.exporter.stats()["spool_batches"] == 0
    assert posthog.drop_counts() == {}


def test_a_full_disk_falls_back_to_memory(server, provider, tmpfs, caplog, monkeypatch):
    monkeypatch.setattr(_spool_access, "SPOOL_RETRY", 0.5)
    pipeline = configure(server.url, provider, spool_dir=str(tmpfs))
    server.otherwise = lambda: Fault(503)
    first = posthog.set("u", {"n": 1})
    _wait_until(lambda: pipeline.exporter.stats()["spooled"] == 1)  # the spool is in use
    _fill_up(tmpfs)  # then the disk fills up
    second = posthog.set("u", {"n": 2, "pad": "y" * 8000})
    _wait_until(lambda: "cannot use the spool" in caplog.text)
    server.otherwise = lambda: Fault()
    assert pipeline.flush(timeout_millis=20_000)
    assert [e["uuid"] for e in server.events] == [first, second]
    assert posthog.drop_counts() == {}


def _fill_up(directory):
    filler = os.open(str(directory / "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(filler, b"x" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(filler)


def _spool_three_batches(pipeline):
    """PostHog down: 300 operations for five persons, in three spool files (the first of them the
    batch being retried, claimed), then PostHog back. Returns their uuids, oldest first."""
    made = []
    for _ in range(3):
        made += [posthog.set("user-%d" % (n % 5), {"n": n}) for n in range(len(made), len(made) + 100)]
        count = len(made)
        _wait_until(lambda count=count: pipeline.exporter.stats()["spooled"] == count, timeout=30)
    return made


def _assert_each_once_in_order(events, uuids):
    assert sorted(e["uuid"] for e in events) == sorted(uuids)
    latest = {}
    for event in events:
        person, n = event["distinct_id"], event["$set"]["n"]
        assert n > latest.get(person, -1), "%s: n=%d arrived after n=%d" % (person, n, latest[person])
        latest[person] = n


@pytest.mark.parametrize("fault", [pytest.param("read-only", marks=pytest.mark.slow), "full"])
def test_newer_operations_never_overtake_what_the_spool_cannot_release(fault, server, provider, tmpfs, monkeypatch):
    """The disk turns read-only (or fills up) while the spool holds older batches: the one in
    flight is delivered, and nothing newer is sent before the batches behind it."""
    monkeypatch.setattr(_spool_access, "SPOOL_RETRY", 0.5)
    pipeline = configure(server.url, provider, spool_dir=str(tmpfs))
    server.otherwise = lambda: Fault(503)
    older = _spool_three_batches(pipeline)
    if fault == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    else:
        _fill_up(tmpfs)
    server.otherwise = lambda: Fault()
    newer = [posthog.set("user-%d" % (n % 5), {"n": n}) for n in range(300, 400)]
    server.wait_for_events(100, timeout=30)  # the batch in flight, at least
    if fault == "read-only":
        assert pipeline.flush(timeout_millis=1000) is False  # the rest waits: older on disk, newer behind
        assert len(server.events) == 100
        subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    assert pipeline.flush(timeout_millis=60_000)
    _assert_each_once_in_order(server.events, older + newer)
    assert posthog.drop_counts() == {}


def test_a_delivered_batch_the_disk_would_not_let_go_is_removed_as_soon_as_it_does(
    server, provider, tmpfs, monkeypatch
):
    """Its file is a claim of a live process: a sibling sharing the spool waits behind it. Once
    the disk is writable again it goes at once, even though writing to the spool is not tried
    again for a long while, and nothing is sent twice."""
    monkeypatch.setattr(_spool_access, "SPOOL_RETRY", 3600.0)
    pipeline = configure(server.url, provider, spool_dir=str(tmpfs))
    server.otherwise = lambda: Fault(503)
    older = _spool_three_batches(pipeline)
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    server.otherwise = lambda: Fault()
    server.wait_for_events(100, timeout=30)
    subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    _wait_until(lambda: not [n for d in tmpfs.iterdir() for n in os.listdir(d) if n.endswith((".json", ".claimed"))],
                timeout=30)  # fmt: skip
    assert pipeline.flush(timeout_millis=10_000)
    _assert_each_once_in_order(server.events, older)


# --- the exporter with its spool --------------------------------------------------------------


def configure(url, provider, **settings):
    return posthog.configure(
        exporter=PostHogLogExporter(api_key=API_KEY, host=url, retry_policy=FAST, spool_after=0.2, **settings),
        logger_provider=provider,
        schedule_delay_millis=50,
    )


def test_outage_spools_then_everything_arrives_in_order(server, provider):
    pipeline = configure(server.url, provider)
    server.otherwise = lambda: Fault(503)
    first = [posthog.set("u", {"n": i}) for i in range(3)]
    _wait_until(lambda: pipeline.exporter.stats()["spooled"] == 3)
    later = [posthog.set("u", {"n": i}) for i in range(3, 6)]
    pipeline.processor._batch.force_flush()  # queued behind the spool, not sent ahead of it
    _wait_until(lambda: pipeline.exporter.stats()["spooled"] == 6)
    server.otherwise = lambda: Fault()
    assert pipeline.flush() is True
    assert [e["uuid"] for e in server.events] == first + later
    assert pipeline.exporter.stats()["spool_batches"] == 0
    assert posthog.drop_counts() == {}


def test_the_spool_is_sent_on_its_own_when_posthog_is_back(server, provider):
    pipeline = configure(server.url, provider)
    server.otherwise = lambda: Fault(drop_connection=True)
    uuid = posthog.set("u", {"a": 1})
    _wait_until(lambda: pipeline.exporter.stats()["spool_batches"] == 1)
    server.otherwise = lambda: Fault()
    server.wait_for_events(1, timeout=30)
    assert [e["uuid"] for e in server.events] == [uuid]


def test_a_refused_key_keeps_data_in_the_spool(server, provider, caplog):
    pipeline = configure(server.url, provider)
    server.otherwise = lambda: Fault(401)
    uuid = posthog.set("u", {"a": 1})
    assert pipeline.flush(timeout_millis=1000) is False
    _wait_until(lambda: pipeline.exporter.stats()["spool_batches"] == 1)
    assert [r.levelno for r in caplog.records].count(logging.ERROR) == 1
    server.otherwise = lambda: Fault()  # the key is accepted again: sent at the next attempt
    server.wait_for_events(1, timeout=30)
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
    while True:
        try:
            time.sleep(60)
        except BaseException:  # a loop that swallows everything still ends on SIGTERM
            pass
"""


def run_script(url, count, mode, spool_dir, **popen):
    env = child_env(POSTHOG_OTEL_SPOOL_DIR=spool_dir)
    return subprocess.Popen([sys.executable, "-c", SCRIPT, API_KEY, url, str(count), mode], env=env, text=True, **popen)


def test_a_script_that_exits_while_posthog_is_down_loses_nothing(server, tmp_path):
    server.otherwise = lambda: Fault(drop_connection=True)
    assert run_script(server.url, 5, "exit", str(tmp_path)).wait(timeout=60) == 0
    assert server.events == []
    server.otherwise = lambda: Fault()
    second = run_script(server.url, 5, "exit", str(tmp_path), stderr=subprocess.PIPE)  # sends them first
    _, said = second.communicate(timeout=60)
    assert second.returncode == 0
    assert [e["$set"]["n"] for e in server.events] == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    assert "has not taken" not in said  # its own operations waited behind the spool: PostHog was fine
    assert [e["uuid"] for e in server.events[:5]] != [e["uuid"] for e in server.events[5:]]


def test_sigterm_spools_the_queue_then_ends_the_process_as_the_default_would(server, tmp_path):
    server.otherwise = lambda: Fault(drop_connection=True)
    process = run_script(server.url, 5, "wait", str(tmp_path), stdout=subprocess.PIPE)
    try:
        assert process.stdout.readline().strip() == "ready"
        process.terminate()
        assert process.wait(timeout=30) == -signal.SIGTERM  # killed by the signal, bare except or not
    finally:
        process.kill()  # not left behind when it survived
        process.communicate()
    server.otherwise = lambda: Fault()
    assert run_script(server.url, 0, "exit", str(tmp_path)).wait(timeout=60) == 0
    assert [e["$set"]["n"] for e in server.events] == [0, 1, 2, 3, 4]


def test_sigterm_delivers_first_when_posthog_answers(server, tmp_path):
    process = run_script(server.url, 5, "wait", str(tmp_path), stdout=subprocess.PIPE)
    try:
        assert process.stdout.readline().strip() == "ready"
        process.terminate()
        assert process.wait(timeout=30) == -signal.SIGTERM
    finally:
        process.kill()  # not left behind when it survived
        process.communicate()
    assert [e["$set"]["n"] for e in server.events] == [0, 1, 2, 3, 4]


def test_spool_can_be_turned_off(server, provider):
    pipeline = configure(server.url, provider, spool=False)
    server.otherwise = lambda: Fault(503)
    posthog.set("u", {"a": 1})
    pipeline.flush()
    assert posthog.drop_counts() == {"delivery_failed": 1}
    assert pipeline.exporter.stats()["spool_batches"] == 0


def _wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_batches_queued_behind_another_process_backlog_are_not_called_late(
    server, provider, tmp_path, monkeypatch, caplog
):
    """Memory holds a batch (one request is in flight) when the spool turns out to hold another
    process's backlog: the batch goes in behind it, and PostHog is not blamed for being late."""
    monkeypatch.setattr("posthog_otel._delivery.spool_access.SPOOL_POLL", 3600.0)  # the spool is looked at when asked
    exporter = PostHogLogExporter(
        api_key=API_KEY, host=server.url, spool_dir=str(tmp_path), spool_after=3600, timeout=600
    )
    posthog.configure(exporter=exporter, logger_provider=provider, schedule_delay_millis=50)
    server.fail_next(Fault(hold=True))
    posthog.set("u", {"n": 1})
    _wait_until(lambda: server.held == 1)  # the one request in flight, unanswered
    posthog.set("u", {"n": 2})
    _wait_until(lambda: exporter.stats()["memory_events"] == 1)
    other = DiskSpool(
        spool_directory(exporter.settings), exporter.settings.spool_max_bytes, exporter.settings.spool_max_age
    )
    other.append(
        EncodedBatch.encode([{"event": "$set", "distinct_id": "x", "$set": {"n": 0}, "uuid": str(uuid.uuid4())}])[0]
    )
    with caplog.at_level(logging.DEBUG, logger="posthog_otel"):
        exporter.force_flush(0)  # "look at the spool now"
        _wait_until(lambda: exporter.stats()["memory_events"] == 0)
    assert "behind earlier batches" in caplog.text
    assert "has not taken" not in caplog.text


# --- housekeeping -----------------------------------------------------------------------------

HOLD_A_CLAIM = """
import sys
from posthog_otel._delivery.spool import DiskSpool
spool = DiskSpool(sys.argv[1], 1 << 30, 3600)
spool._owner()  # its owner file, locked for as long as it lives
print("holding", flush=True)
sys.stdin.readline()
"""


def test_owner_files_of_processes_that_ended_are_removed(tmp_path):
    """Each run leaves an owner file; a hundred short runs left a hundred, and every look at
    the spool lists them. Those nobody holds go when a spool is opened; a live process's stays."""
    live = subprocess.Popen([sys.executable, "-c", HOLD_A_CLAIM, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=child_env(), cwd=str(ROOT))  # fmt: skip
    try:
        assert live.stdout.readline().strip() == "holding"
        for n in range(100):
            (tmp_path / ("owner-%016x.lock" % n)).write_text("")
        DiskSpool(tmp_path, BIG, WEEK)
        assert len([n for n in os.listdir(tmp_path) if n.startswith("owner-")]) == 1  # the live one
    finally:
        live.stdin.close()
        live.wait(timeout=30)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give a directory away")
def test_a_spool_whose_parent_belongs_to_another_user_is_refused(tmp_path):
    """That user could rename our directory away and put theirs in its place."""
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 12345, 12345)
    with pytest.raises(SpoolUnavailable, match="belongs to another user"):
        DiskSpool(theirs / "spool", BIG, WEEK)


def test_two_exporters_on_one_spool_in_one_process_never_send_a_claim_twice(tmp_path):
    """Same key and host (configure() and a Client, or a gateway's project reopened): one
    directory, one owner token. Each must see the other's claims as held, not as orphans."""
    first, second = DiskSpool(tmp_path, BIG, WEEK), DiskSpool(tmp_path, BIG, WEEK)
    first.append(batch("a"))
    second.append(batch("b"))
    claim, names = head_names(first, max_bytes=1)  # "a", held by the first
    assert names == ["a"]
    assert second.claim_head(BIG, 1 << 30) is BUSY  # not taken back and sent again
    claim.done()
    assert head_names(second)[1] == ["b"]


def test_an_empty_spool_directory_can_be_removed_and_comes_back_when_needed(tmp_path):
    spool = DiskSpool(tmp_path / "key", BIG, WEEK)
    spool.append(batch("a"))
    assert not spool.remove_if_empty()  # holds a batch
    head_names(spool)[0].done()
    assert spool.remove_if_empty()
    assert not (tmp_path / "key").exists()
    spool.append(batch("b"))  # used again: made again
    assert head_names(spool)[1] == ["b"]
