"""Loss, delay, order and exit time under faults: posthog_otel beside PostHog's SDK, same run.

    python benchmarks/reliability.py [--rounds 3] [--sdk both|ours|reference] [--only burst,slow,...]

Each scenario runs each SDK in its own producer process against a sink on 127.0.0.1 (its
own process, appending what it accepts to a file, so the sink can die and come back).
Producers call ``set(user-k, {"seq": n})`` for ten users round robin and log every call
(uuid or None, and when), unbuffered, so a SIGKILLed producer's log is complete.

Scenarios (the issue's):
  burst-5000 / burst-20000   N calls in a tight loop; a healthy sink
  slow-2s                    20,000 at 2,000/s; every answer takes 2 s
  flaky-30 / flaky-50        20,000 / 10,000 at 2,000 / 1,000 per s; 30% / 50% of answers are 503
  slow-1.5s-flaky-30         10,000 at 2,000/s; every answer 1.5 s, 30% of them 503
  blackhole-exit             100 calls, then the script ends; the sink never answers
  backlog-drain              N calls while the sink is down, then it comes back: seconds until
                             the first event arrives, then events/s from first to last
  schedule                   90 s at 200/s: 503s, 429s, dropped connections, slow answers,
                             30 s down, SIGTERM while down, SIGKILL, a normal exit
  daemon-exit, read-only-order, exit-healthy
                             delivery at the edges: see benchmarks/edges.py

Both SDKs run with their defaults: posthog_otel.configure(api_key=..., host=...) (the SDK's
batch processor: queue 2048, batch 512, 1 s delay; spool on, spool_after 1 s) and
posthog.Client(api_key, host=...) (queue 10,000, 100 per request, 0.5 s interval, 3
retries, 15 s timeout; its shutdown registered at exit, as its docs say).
Numbers are medians over the rounds, with [min-max] when they differ.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from typing import Any, Callable, Dict, List, Optional

import edges  # noqa: E402 (beside this script)

HERE = pathlib.Path(__file__).resolve().parent
API_KEY = "phc_reliability0123456789abcdefghijklmnopq"
USERS = 10
SDK_NAMES = {"ours": "posthog_otel", "reference": "posthog SDK"}

PRODUCER = r"""
import os, sys, time
sdk, url, rate, count, start, log_path, spool, key, end = sys.argv[1:10]
rate, count, start = float(rate), int(count), int(start)
log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
if sdk == "ours":
    import posthog_otel as api
    pipeline = api.configure(api_key=key, host=url, spool_dir=spool)
    emit = lambda user, seq: api.set(user, {"seq": seq})
    def stop():
        pipeline.shutdown()
else:
    import atexit, posthog
    client = posthog.Client(key, host=url)
    atexit.register(client.shutdown)
    emit = lambda user, seq: client.set(distinct_id=user, properties={"seq": seq})
    def stop():
        client.shutdown()
print("started", flush=True)
lines = []
began = time.monotonic()
for n in range(count):
    seq = start + n
    uuid = emit("user-%d" % (seq % 10), seq)
    lines.append("%s %d %.6f\n" % (uuid, seq, time.time()))
    if rate:
        if len(lines) >= 20:
            os.write(log, "".join(lines).encode())
            lines = []
        time.sleep(max(0.0, began + (n + 1) / rate - time.monotonic()))
os.write(log, "".join(lines).encode())
print("done %.6f" % time.time(), flush=True)
if end == "wait":  # a service keeps running: told when to stop
    sys.stdin.readline()
    stop()
elif end == "forever":
    while True:
        time.sleep(1)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Sink:
    def __init__(self, workdir: pathlib.Path, name: str) -> None:
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.file = workdir / ("%s-received.jsonl" % name)
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, str(HERE / "fault_sink.py"), str(self.port), str(self.file)],
                                        stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def mode(self, mode: str) -> None:
        urllib.request.urlopen(urllib.request.Request(self.url + "/_mode", data=mode.encode()), timeout=5).read()

    def received(self) -> List[Dict[str, Any]]:
        if not self.file.exists():
            return []
        return [json.loads(line) for line in self.file.read_text().splitlines() if line]

    def wait_for(self, uuids: set, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not uuids <= {e["uuid"] for e in self.received()}:
            time.sleep(0.25)


class Run:
    """One scenario for one SDK: a sink, producers, and what they logged."""

    def __init__(self, sdk: str, workdir: pathlib.Path, name: str) -> None:
        self.sdk = sdk
        self.dir = workdir / ("%s-%s" % (name, sdk))
        self.dir.mkdir()
        self.sink = Sink(self.dir, "sink")
        self.log = self.dir / "emitted.log"
        self.spool = self.dir / "spool"

    def producer(self, rate: float, count: int, start: int = 0, end: str = "wait") -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTHOG_", "OTEL_"))}
        env["PYTHONPATH"] = str(HERE.parent)
        process = subprocess.Popen(
            [sys.executable, "-c", PRODUCER, self.sdk, self.sink.url, str(rate), str(count), str(start),
             str(self.log), str(self.spool), API_KEY, end],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        assert process.stdout.readline().strip() == "started"
        return process

    def emitted(self) -> Dict[str, tuple]:
        calls = {}
        for index, line in enumerate(self.log.read_text().splitlines()):
            uuid, seq, when = line.split()
            calls[uuid if uuid != "None" else "None-%d" % index] = (int(seq), float(when))
        return calls

    def finish(self, process: subprocess.Popen, wait_for_all: float = 60) -> None:
        """Let the service run until the sink has everything (or time is up), then stop it."""
        process.stdout.readline()  # "done"
        self.sink.wait_for({u for u in self.emitted() if not u.startswith("None")}, wait_for_all)
        process.stdin.write("\n")
        process.stdin.flush()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # still flushing to a slow PostHog: it is stopped, as a deploy would
            process.kill()
            process.wait()

    def judge(self) -> Dict[str, Any]:
        calls = self.emitted()
        received = self.sink.received()
        seen: Dict[str, float] = {}
        duplicates = violations = 0
        highest: Dict[str, int] = defaultdict(lambda: -1)
        for event in received:
            if event["uuid"] in seen:
                duplicates += 1
                continue
            seen[event["uuid"]] = event["at"]
            if event["seq"] is not None:
                violations += event["seq"] < highest[event["distinct_id"]]
                highest[event["distinct_id"]] = max(highest[event["distinct_id"]], event["seq"])
        delays = sorted(seen[u] - calls[u][1] for u in calls if u in seen)
        return {
            "calls": len(calls),
            "lost": sum(1 for u in calls if u not in seen),
            "duplicated": duplicates,
            "order violations": violations,
            "delay p50 (s)": round(delays[len(delays) // 2], 2) if delays else "-",
            "delay p99 (s)": round(delays[int(len(delays) * 0.99)], 2) if delays else "-",
            "delay max (s)": round(delays[-1], 2) if delays else "-",
        }


# --- scenarios ------------------------------------------------------------------------------


def steady(count: int, rate: float, mode: str) -> Callable[[Run], Dict[str, Any]]:
    def play(run: Run) -> Dict[str, Any]:
        run.sink.start()
        run.sink.mode(mode)
        try:
            run.finish(run.producer(rate, count), wait_for_all=90)
        finally:
            run.sink.stop()
        return run.judge()

    return play


def blackhole_exit(run: Run) -> Dict[str, Any]:
    run.sink.start()
    run.sink.mode("hold")
    producer = run.producer(0, 100, end="exit")
    ended = float(producer.stdout.readline().split()[1])
    producer.wait(timeout=300)
    exit_seconds = time.time() - ended
    run.sink.stop()
    run.sink.start()  # PostHog answers again: does a later run deliver what was left?
    if run.sdk == "ours":
        run.producer(0, 0, end="exit").wait(timeout=120)
    run.sink.wait_for({u for u in run.emitted() if not u.startswith("None")}, 15)
    run.sink.stop()
    result = run.judge()
    return {"exit time (s)": round(exit_seconds, 2), "calls": result["calls"],
            "delivered by a later run": result["calls"] - result["lost"], "lost": result["lost"]}  # fmt: skip


def backlog_drain(count: int) -> Callable[[Run], Dict[str, Any]]:
    def play(run: Run) -> Dict[str, Any]:
        run.sink.start()
        run.sink.mode("drop")  # down: every connection is closed unanswered
        producer = run.producer(0, count, end="forever")
        producer.stdout.readline()
        time.sleep(3)  # what can wait, waits (spool, queue); the rest is given up
        run.sink.mode("ok")
        back = time.time()
        run.sink.wait_for({u for u in run.emitted() if not u.startswith("None")}, 120)
        producer.kill()
        producer.wait()
        run.sink.stop()
        result = run.judge()
        arrivals = sorted(e["at"] for e in run.sink.received())
        delivered = result["calls"] - result["lost"]
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0
        return {"calls": result["calls"], "delivered": delivered, "lost": result["lost"],
                "recovery (s)": round(arrivals[0] - back, 2) if arrivals else "-",
                "drain rate (events/s)": int(delivered / span) if span > 0 else "-"}  # fmt: skip

    return play


def schedule(run: Run, rate: float = 200) -> Dict[str, Any]:
    """The 90 s fault schedule; a SIGKILL at 65 s, whose loss is judged against its window."""
    begin = time.monotonic()

    def at(second: float) -> None:
        time.sleep(max(0.0, begin + second - time.monotonic()))

    run.sink.start()
    first = run.producer(rate, 1_000_000, end="forever")
    for second, mode in ((5, "503"), (10, "429"), (15, "drop"), (20, "slow")):
        at(second)
        run.sink.mode(mode)
    at(25)
    run.sink.stop()
    at(40)
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=60)
    at(42)
    second = run.producer(rate, 1_000_000, start=1_000_000, end="forever")
    at(55)
    run.sink.start()
    at(65)
    kill_time = time.time()
    second.send_signal(signal.SIGKILL)
    second.wait()
    at(66)
    third = run.producer(rate, int(9 * rate), start=2_000_000, end="exit")
    third.wait(timeout=120)
    at(90)
    run.sink.stop()
    result = run.judge()
    calls = run.emitted()
    seen = {e["uuid"] for e in run.sink.received()}
    window = 2.0 if run.sdk == "ours" else 0.0  # our stated window: the SDK's 1 s delay + spool_after 1 s
    near = sum(1 for u, (_, when) in calls.items() if u not in seen and kill_time - 3 <= when <= kill_time)
    inside = sum(1 for u, (_, when) in calls.items() if u not in seen and kill_time - window <= when <= kill_time)
    return {**{k: result[k] for k in ("calls", "lost", "duplicated", "order violations")},
            "lost within 3 s before SIGKILL": near,
            "lost outside the stated window": result["lost"] - inside,
            "SIGTERM exit": first.returncode}  # fmt: skip


SCENARIOS: Dict[str, Callable[[Run], Dict[str, Any]]] = {
    "burst-5000": steady(5_000, 0, "ok"),
    "burst-20000": steady(20_000, 0, "ok"),
    "slow-2s": steady(20_000, 2_000, "slow:2"),
    "flaky-30": steady(20_000, 2_000, "flaky:0.3:1"),
    "flaky-50": steady(10_000, 1_000, "flaky:0.5:2"),
    "slow-1.5s-flaky-30": steady(10_000, 2_000, "flaky:0.3:3:1.5"),
    "blackhole-exit": blackhole_exit,
    "backlog-drain": backlog_drain(10_000),
    "schedule": schedule,
    "daemon-exit": edges.daemon_exit,
    "read-only-order": edges.read_only_order,
    "exit-healthy": edges.exit_healthy,
}


def summarise(values: List[Any]) -> str:
    numbers = [v for v in values if isinstance(v, (int, float))]
    if len(numbers) != len(values):
        return str(values[0])
    middle = statistics.median(numbers)
    middle = int(middle) if all(isinstance(v, int) for v in numbers) and middle == int(middle) else round(middle, 2)
    low, high = min(numbers), max(numbers)
    return str(middle) if low == high else "%s [%s-%s]" % (middle, low, high)


def _header(args: argparse.Namespace) -> str:
    import platform

    versions = subprocess.run(
        [sys.executable, "-c", "import opentelemetry.sdk.version as o, posthog; print(o.__version__, posthog.VERSION)"],
        capture_output=True, text=True,
    ).stdout.split() or ["?", "?"]  # fmt: skip
    return "python benchmarks/reliability.py --rounds %d\n%s cores, Python %s, opentelemetry-sdk %s, posthog %s\n" % (
        args.rounds,
        os.cpu_count(),
        platform.python_version(),
        *versions[:2],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sdk", choices=("both", "ours", "reference"), default="both")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenario names")
    args = parser.parse_args()
    sdks = ["ours", "reference"] if args.sdk == "both" else [args.sdk]
    chosen = [name for name in args.only.split(",") if name]
    print(_header(args), flush=True)
    results: Dict[str, Dict[str, Dict[str, List[Any]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    with tempfile.TemporaryDirectory(prefix="posthog-otel-reliability-") as work:
        for round_ in range(args.rounds):
            for name in chosen:
                for sdk in sdks:
                    workdir = pathlib.Path(work) / ("round%d" % round_)
                    workdir.mkdir(exist_ok=True)
                    started = time.monotonic()
                    outcome = SCENARIOS[name](Run(sdk, workdir, name))
                    print("round %d  %-20s %-13s %5.1f s  %s" % (round_ + 1, name, SDK_NAMES[sdk],
                          time.monotonic() - started, outcome), flush=True)  # fmt: skip
                    for metric, value in outcome.items():
                        results[name][metric][sdk].append(value)
    print("\n%d round(s); medians [min-max]\n" % args.rounds)
    width = max(len(m) for metrics in results.values() for m in metrics) + 2
    print("%-20s %-*s  %-22s  %-22s" % ("scenario", width, "", *[SDK_NAMES[s] for s in ("ours", "reference")]))
    for name, metrics in results.items():
        for index, (metric, per_sdk) in enumerate(metrics.items()):
            cells = [summarise(per_sdk[s]) if per_sdk.get(s) else "-" for s in ("ours", "reference")]
            print("%-20s %-*s  %-22s  %-22s" % (name if index == 0 else "", width, metric, *cells))


if __name__ == "__main__":
    main()
