"""Delivery at the edges (issue 17), scenarios of benchmarks/reliability.py:

  daemon-exit       four daemon threads call set() while the main thread ends: every call
                    either returned a uuid PostHog got, or was counted (returned = delivered
                    + counted); "silent" is what is neither
  read-only-order   3,000 calls during an outage (spooled), the spool's filesystem remounted
                    read-only, PostHog back, 200 more calls, then the disk writable again:
                    order per person, duplicates, losses (a tmpfs of our own: needs root)
  exit-healthy      20,000 calls in a tight loop, then the script ends without flush(), against
                    the local PostHog (``posthog-otel server``): what arrived, the exit's duration

Each takes a ``Run`` of reliability.py (its sink, log, spool directory and judge).
"""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import subprocess
import sys
import time
from typing import Any, Dict

HERE = pathlib.Path(__file__).resolve().parent
API_KEY = "phc_reliability0123456789abcdefghijklmnopq"

#: Each SDK as its docs set it up (PostHog's with its shutdown at exit): ``emit(user, seq)``, ``stop()``.
SDK = r"""
if sdk == "ours":
    import posthog_otel as api
    pipeline = api.configure(api_key=key, host=url, spool_dir=spool)
    emit = lambda user, seq: api.set(user, {"seq": seq})
    stop = pipeline.shutdown
else:
    import atexit, posthog
    client = posthog.Client(key, host=url)
    atexit.register(client.shutdown)
    emit = lambda user, seq: client.set(distinct_id=user, properties={"seq": seq})
    stop = client.shutdown
"""

DAEMONS = (
    r"""
import atexit, json, os, sys, threading, time
sdk, url, log_path, spool, key, report = sys.argv[1:7]
log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
lock, stopped = threading.Lock(), []

def counted():
    if sdk == "ours":
        import posthog_otel
        return posthog_otel.drop_counts()
    return {}  # PostHog's SDK counts nothing

def done():  # registered first: runs last, once the SDK's own exit has run
    with lock:  # no call is half done now, and none starts after
        stopped.append(True)
        with open(report, "w") as out:
            json.dump(counted(), out)

atexit.register(done)
"""
    + SDK
    + r"""
def work(k):
    n = 0
    while True:
        with lock:
            if stopped:
                return
            seq = k * 10_000_000 + n
            os.write(log, ("%s %d %.6f\n" % (emit("user-%d" % k, seq), seq, time.time())).encode())
        n += 1

for k in range(4):
    threading.Thread(target=work, args=(k,), daemon=True).start()
time.sleep(1.0)  # then the main thread ends while they go on
"""
)

#: The start of the phase scripts: their arguments and the log of what each call returned.
HEAD = r"""
import os, sys, time
sdk, url, log_path, spool, key = sys.argv[1:6]
log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
"""

PHASES = (
    HEAD
    + SDK
    + r"""
seq = 0
print("started", flush=True)
for line in sys.stdin:  # "N": N more calls at 1,000/s; "stop"
    if line.strip() == "stop":
        break
    began = time.monotonic()
    for n in range(int(line)):
        os.write(log, ("%s %d %.6f\n" % (emit("user-%d" % (seq % 10), seq), seq, time.time())).encode())
        seq += 1
        time.sleep(max(0.0, began + (n + 1) / 1000 - time.monotonic()))
    print("done", flush=True)
stop()
"""
)


def _env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTHOG_", "OTEL_"))}
    env["PYTHONPATH"] = str(HERE.parent)
    return env


def daemon_exit(run: Any) -> Dict[str, Any]:
    run.sink.start()
    report = run.dir / "counted.json"
    try:
        subprocess.run([sys.executable, "-c", DAEMONS, run.sdk, run.sink.url, str(run.log), str(run.spool), API_KEY,
                        str(report)], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=300)  # fmt: skip
        calls = run.emitted()
        run.sink.wait_for({u for u in calls if not u.startswith("None")}, 10)
    finally:
        run.sink.stop()
    delivered = len({e["uuid"] for e in run.sink.received()} & set(calls))
    counted = sum(json.loads(report.read_text()).values()) if report.exists() else 0
    returned = sum(1 for u in calls if not u.startswith("None"))
    return {"calls": len(calls), "returned a uuid": returned, "delivered": delivered,
            "returned None": len(calls) - returned, "counted": counted,
            "uuid returned, never delivered": returned - delivered,
            "delivered + counted - calls": delivered + counted - len(calls)}  # fmt: skip


def read_only_order(run: Any) -> Dict[str, Any]:
    mount = run.dir / "fs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True).returncode:
        return {"skipped": "cannot mount a tmpfs (needs root)"}
    try:
        return _read_only_order(run, mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _read_only_order(run: Any, mount: pathlib.Path) -> Dict[str, Any]:
    run.sink.start()
    run.sink.mode("503")  # down
    producer = subprocess.Popen(
        [sys.executable, "-c", PHASES, run.sdk, run.sink.url, str(run.log), str(mount / "spool"), API_KEY],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env(),
    )  # fmt: skip

    def phase(text: str) -> None:
        assert producer.stdin is not None and producer.stdout is not None
        producer.stdin.write(text + "\n")
        producer.stdin.flush()
        if text != "stop":
            producer.stdout.readline()

    try:
        assert producer.stdout is not None and producer.stdout.readline().strip() == "started"
        phase("3000")
        time.sleep(3)  # past spool_after: ours is on disk; PostHog's SDK retries, or gives up
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        run.sink.mode("ok")
        phase("200")
        time.sleep(5)  # the disk stays read-only a while
        subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)
        run.sink.wait_for({u for u in run.emitted() if not u.startswith("None")}, 60)
        phase("stop")
        producer.wait(timeout=60)
    finally:
        if producer.poll() is None:
            producer.kill()
        run.sink.stop()
    result = run.judge()
    return {k: result[k] for k in ("calls", "lost", "duplicated", "order violations")}


EXIT = (
    HEAD
    + SDK
    + r"""
lines = ["%s %d %.6f\n" % (emit("user-%d" % (n % 10), n), n, time.time()) for n in range(20_000)]
os.write(log, "".join(lines).encode())
print("done %.6f" % time.time(), flush=True)  # and the script ends, without flush()
"""
)


def exit_healthy(run: Any) -> Dict[str, Any]:
    """Against the local PostHog (``posthog-otel server``: SQLite, each request answered once
    stored), the healthy PostHog of the issue's report."""
    database = run.dir / "local.sqlite3"
    server = subprocess.Popen([sys.executable, "-m", "posthog_otel.cli", "server", "--db", str(database), "--port",
                               "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env())  # fmt: skip
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[-1]
        producer = subprocess.Popen([sys.executable, "-c", EXIT, run.sdk, url, str(run.log), str(run.spool), API_KEY],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env())  # fmt: skip
        assert producer.stdout is not None
        ended = float(producer.stdout.readline().split()[1])
        producer.wait(timeout=600)
        exit_seconds = time.time() - ended
    finally:
        server.terminate()
        server.wait(timeout=60)
    with sqlite3.connect(str(database)) as db:
        stored = [row[0] for row in db.execute("SELECT uuid FROM events")]
    calls = run.emitted()
    left = sum(1 for d in run.spool.glob("*") for f in d.glob("*") if f.name.endswith((".json", ".claimed")))
    return {"calls": len(calls), "delivered before exit": len(set(stored) & set(calls)),
            "exit time (s)": round(exit_seconds, 2), "spool files left": left}  # fmt: skip
