"""Loss, duplication and reordering under a fixed fault schedule: posthog_otel vs PostHog's SDK.

    python benchmarks/reliability.py [--rate 200] [--sdk both|ours|reference]

Each SDK runs in producer processes that call ``set(user-k, {"seq": n})`` for ten users
round robin at ``--rate`` operations a second, against a sink on 127.0.0.1 (its own
process, persisting what it accepts). The same schedule is applied to both:

    0-5 s ok | 5-10 503s | 10-15 429 + Retry-After: 2 | 15-20 dropped connections
    20-25 slow answers (1.5 s) | 25-55 the sink is down (process stopped)
    40 s SIGTERM to the producer, a new producer at 42 s (still down)
    55 s the sink is back | 65 s SIGKILL to the producer, a new one at 66 s
    75 s that producer exits normally | results read at 90 s

Printed per SDK: operations emitted, delivered, lost (and lost around the SIGKILL),
duplicated, order violations per distinct id, and how many users end in the state the
in-order sequence implies. Sequence numbers of later producers continue past earlier
ones, so order is judged across restarts too.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

HERE = pathlib.Path(__file__).resolve().parent
API_KEY = "phc_reliability0123456789abcdefghijklmnopq"
USERS = 10

PRODUCER = r"""
import os, sys, time
sdk, url, rate, start, log_path, spool = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
if sdk == "ours":
    import posthog_otel as api
    api.configure(api_key=sys.argv[7], host=url, spool_dir=spool)
    def emit(user, seq):
        return api.set(user, {"seq": seq})
else:
    import posthog
    client = posthog.Client(sys.argv[7], host=url)
    def emit(user, seq):
        return client.set(distinct_id=user, properties={"seq": seq})
    import atexit
    atexit.register(client.shutdown)
print("started", flush=True)
seq = start
next_at = time.monotonic()
stop_at = time.monotonic() + float(sys.argv[8])
while time.monotonic() < stop_at:
    user = "user-%d" % (seq % 10)
    uuid = emit(user, seq)
    os.write(log, ("%s %s %d %.3f\n" % (uuid, user, seq, time.time())).encode())
    seq += 1
    next_at += 1.0 / rate
    time.sleep(max(0.0, next_at - time.monotonic()))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Run:
    def __init__(self, sdk: str, rate: float, workdir: pathlib.Path) -> None:
        self.sdk, self.rate, self.dir = sdk, rate, workdir
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.sink_file = workdir / ("%s-received.jsonl" % sdk)
        self.emitted_file = workdir / ("%s-emitted.log" % sdk)
        self.spool = workdir / ("%s-spool" % sdk)
        self.sink = None
        self.kill_time = 0.0

    def start_sink(self) -> None:
        self.sink = subprocess.Popen(
            [sys.executable, str(HERE / "fault_sink.py"), str(self.port), str(self.sink_file)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.sink.stdout.readline().strip() == "ready"

    def stop_sink(self) -> None:
        self.sink.kill()
        self.sink.wait()

    def mode(self, mode: str) -> None:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(self.url + "/_mode", data=mode.encode()), timeout=5).read()

    def producer(self, start_seq: int, seconds: float) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTHOG_")}
        env["PYTHONPATH"] = str(HERE.parent)
        process = subprocess.Popen(
            [sys.executable, "-c", PRODUCER, self.sdk, self.url, str(self.rate), str(start_seq),
             str(self.emitted_file), str(self.spool), API_KEY, str(seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        assert process.stdout.readline().strip() == "started"
        return process

    def play(self) -> None:
        begin = time.monotonic()

        def at(second: float) -> None:
            time.sleep(max(0.0, begin + second - time.monotonic()))

        self.start_sink()
        first = self.producer(0, 1000)
        for second, mode in ((5, "503"), (10, "429"), (15, "drop"), (20, "slow")):
            at(second)
            self.mode(mode)
            print("  %5.1f s  sink answers %s" % (time.monotonic() - begin, mode), flush=True)
        at(25)
        self.stop_sink()
        print("  %5.1f s  sink down" % (time.monotonic() - begin), flush=True)
        at(40)
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
        print("  %5.1f s  producer 1 got SIGTERM (exit %s)" % (time.monotonic() - begin, first.returncode), flush=True)
        at(42)
        second = self.producer(1_000_000, 1000)
        at(55)
        self.start_sink()
        print("  %5.1f s  sink back" % (time.monotonic() - begin), flush=True)
        at(65)
        self.kill_time = time.time()
        second.send_signal(signal.SIGKILL)
        second.wait()
        print("  %5.1f s  producer 2 got SIGKILL" % (time.monotonic() - begin), flush=True)
        at(66)
        third = self.producer(2_000_000, 9)
        third.wait(timeout=120)
        print("  %5.1f s  producer 3 exited (%s)" % (time.monotonic() - begin, third.returncode), flush=True)
        at(90)
        self.stop_sink()

    def results(self) -> dict:
        emitted = {}
        for line in self.emitted_file.read_text().splitlines():
            uuid, user, seq, when = line.split()
            if uuid != "None":
                emitted[uuid] = (user, int(seq), float(when))
        received, duplicates = [], 0
        seen = set()
        for line in self.sink_file.read_text().splitlines() if self.sink_file.exists() else []:
            event = json.loads(line)
            if event["uuid"] in seen:
                duplicates += 1
                continue
            seen.add(event["uuid"])
            received.append(event)
        lost = [u for u in emitted if u not in seen]
        near_kill = [u for u in lost if self.kill_time - 3 <= emitted[u][2] <= self.kill_time]
        violations, last_seq, highest = 0, {}, defaultdict(lambda: -1)
        for event in received:
            if event["seq"] is None:
                continue
            user = event["distinct_id"]
            if event["seq"] < highest[user]:
                violations += 1
            highest[user] = max(highest[user], event["seq"])
            last_seq[user] = event["seq"]
        expected_final = defaultdict(lambda: -1)
        for user, seq, _ in emitted.values():
            expected_final[user] = max(expected_final[user], seq)
        correct = sum(1 for user in expected_final if last_seq.get(user) == expected_final[user])
        per_second = self.rate
        return {
            "emitted": len(emitted),
            "delivered": len(emitted) - len(lost),
            "lost": len(lost),
            "lost within 3 s before SIGKILL": len(near_kill),
            "lost elsewhere": len(lost) - len(near_kill),
            "SIGKILL bound (1 s queue delay + 1 batch in flight)": int(per_second * 1.0) + 512,
            "duplicated": duplicates,
            "order violations": violations,
            "users in the in-order final state": "%d / %d" % (correct, len(expected_final)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--sdk", choices=("both", "ours", "reference"), default="both")
    args = parser.parse_args()
    sdks = ["ours", "reference"] if args.sdk == "both" else [args.sdk]
    table = {}
    with tempfile.TemporaryDirectory(prefix="posthog-otel-reliability-") as work:
        for sdk in sdks:
            print("== %s" % ("posthog_otel" if sdk == "ours" else "posthog SDK"), flush=True)
            run = Run(sdk, args.rate, pathlib.Path(work))
            run.play()
            table[sdk] = run.results()
    names = list(next(iter(table.values())))
    width = max(len(n) for n in names)
    print("\n%-*s  %14s  %14s" % (width, "", "posthog_otel", "posthog SDK"))
    for name in names:
        print("%-*s  %14s  %14s" % (width, name, table.get("ours", {}).get(name, "-"), table.get("reference", {}).get(name, "-")))


if __name__ == "__main__":
    main()
