"""``posthog-otel gateway``, one worker: records per second, CPU per record, and latency.

    python benchmarks/gateway.py [--records 100000] [--runs 5] > benchmarks/gateway-latest.txt

Three processes on this machine: a PostHog stand-in (answers 200 at once, notes when each
event arrived), the gateway (``posthog-otel gateway --workers 1``, gunicorn), and an OTLP
client sending protobuf requests of 512 records (the SDK's batch size), each a
``posthog.capture`` with 12 properties, on two kept-alive connections.

- **records/s**: from the first request until PostHog holds every event, and the worker's
  CPU seconds over the same span (from /proc), per record;
- **latency**: at about a quarter of that rate, the time from the client's send (stamped in
  each record) to the event's arrival at PostHog, which answers at once: receipt, decoding,
  mapping, hand-off, encoding and one HTTP request.

Each run starts a fresh gateway and PostHog; the table shows the median over ``--runs`` and
the spread (lowest - highest).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Tuple

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

BATCH = 512
KEY = "phc_benchmark0123456789abcdefghijklmnopqr"


# --- the PostHog stand-in (a child process) ------------------------------------------------------


def sink() -> None:
    arrivals: List[int] = []  # ns from the client's stamp to arrival, per event
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            now = time.time_ns()
            body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
            events = json.loads(body).get("batch", [])
            with lock:
                arrivals.extend(now - int(e["properties"].get("sent_ns", now)) for e in events)
            self._answer(b'{"status": 1}')

        def do_GET(self) -> None:  # noqa: N802  /count, /latencies (and reset)
            with lock:
                if self.path == "/latencies":
                    reply = json.dumps(arrivals).encode()
                    arrivals.clear()
                else:
                    reply = json.dumps({"events": len(arrivals)}).encode()
            self._answer(reply)

        def _answer(self, reply: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


# --- the client --------------------------------------------------------------------------------


def request_body(first: int, sent_ns: int) -> bytes:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    def value(v: object) -> AnyValue:
        if isinstance(v, bool):
            return AnyValue(bool_value=v)
        if isinstance(v, int):
            return AnyValue(int_value=v)
        if isinstance(v, float):
            return AnyValue(double_value=v)
        return AnyValue(string_value=str(v))

    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name", value=value("checkout"))
    records = resource_logs.scope_logs.add().log_records
    for n in range(first, first + BATCH):
        record = records.add(event_name="posthog.capture", time_unix_nano=sent_ns)
        for key, v in (("posthog.distinct_id", "user_%d" % (n % 1000)), ("posthog.event", "order_placed"),
                       ("posthog.groups.company", "company_%d" % (n % 50))):  # fmt: skip
            record.attributes.add(key=key, value=value(v))
        properties = {"sent_ns": sent_ns, "order_id": "order_%d" % n, "amount": 42.5, "currency": "EUR",
                      "items": 3, "coupon": False, "plan": "pro", "country": "DE", "channel": "web",
                      "latency_ms": 120, "experiment": "b", "step": "payment"}  # fmt: skip
        for key, v in properties.items():
            record.body.kvlist_value.values.add(key=key, value=value(v))
    return request.SerializeToString()


def send(url: str, bodies: List[bytes], connections: int, pace: float = 0.0) -> None:
    import requests

    headers = {"Content-Type": "application/x-protobuf", "Authorization": "Bearer " + KEY}
    chunks = [bodies[i::connections] for i in range(connections)]

    def run(mine: List[bytes]) -> None:
        session = requests.Session()
        for body in mine:
            while True:
                reply = session.post(url + "/v1/logs", data=body, headers=headers, timeout=30)
                if reply.status_code == 200:
                    break
                time.sleep(float(reply.headers.get("Retry-After", "1")))
            if pace:
                time.sleep(pace)

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --- one run ------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(url: str) -> object:
    import requests

    return requests.get(url, timeout=10).json()


def one_run(records: int) -> Tuple[float, float, List[int]]:
    spool = tempfile.mkdtemp(prefix="gateway-bench-")
    posthog = subprocess.Popen([sys.executable, __file__, "--sink"], stdout=subprocess.PIPE, text=True)
    posthog_url = "http://127.0.0.1:%s" % posthog.stdout.readline().strip()  # type: ignore[union-attr]
    env = {**os.environ, "POSTHOG_HOST": posthog_url, "POSTHOG_OTEL_SPOOL_DIR": spool}
    gateway = subprocess.Popen([sys.executable, "-m", "posthog_otel.cli", "gateway", "--bind", "127.0.0.1:0",
                                "--workers", "1"], env=env, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = gateway.stdout.readline()  # type: ignore[union-attr]
        url = re.search(r"(http://127\.0\.0\.1:\d+)/v1/logs", line).group(1)  # type: ignore[union-attr]
        worker = get(url + "/health")["pid"]  # type: ignore[index]
        send(url, [request_body(0, time.time_ns())], 1)  # warm: the project, its threads, the connection
        while get(posthog_url + "/count")["events"] < BATCH:  # type: ignore[index]
            time.sleep(0.05)
        get(posthog_url + "/latencies")
        bodies = [request_body(i * BATCH, 0) for i in range(records // BATCH)]
        total = len(bodies) * BATCH
        cpu0, start = cpu_seconds(worker), time.perf_counter()
        send(url, bodies, 2)
        while get(posthog_url + "/count")["events"] < total:  # type: ignore[index]
            time.sleep(0.01)
        elapsed, cpu = time.perf_counter() - start, cpu_seconds(worker) - cpu0
        rate = total / elapsed
        get(posthog_url + "/latencies")
        gap = 4 * BATCH / rate  # a request every gap seconds: about a quarter of the measured rate
        latencies: List[int] = []
        for i in range(20):
            send(url, [request_body(i * BATCH, time.time_ns())], 1)  # stamped as it leaves
            time.sleep(gap)
        deadline = time.monotonic() + 30
        while len(latencies) < 20 * BATCH and time.monotonic() < deadline:
            latencies.extend(get(posthog_url + "/latencies"))  # type: ignore[arg-type]
            time.sleep(0.05)
        return rate, cpu / total * 1e6, latencies
    finally:
        gateway.terminate()
        gateway.wait(60)
        posthog.terminate()
        posthog.wait(10)


def spread(values: List[float], digits: int = 0) -> str:
    form = "%%.%df" % digits
    return "%s  [%s - %s]" % (form % statistics.median(values), form % min(values), form % max(values))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink()
        return
    from opentelemetry.sdk.version import __version__ as sdk_version

    load = os.getloadavg()[0]
    rates, cpus, p50, p99 = [], [], [], []
    for _ in range(args.runs):
        rate, cpu, latencies = one_run(args.records)
        ms = sorted(n / 1e6 for n in latencies)
        rates.append(rate)
        cpus.append(cpu)
        p50.append(ms[len(ms) // 2])
        p99.append(ms[int(len(ms) * 0.99)])
    print("python benchmarks/gateway.py --records %d --runs %d" % (args.records, args.runs))
    print("%d cores (load average %.2f before, %.2f after), Python %s, opentelemetry-sdk %s, gunicorn gthread, 1 worker"
          % (os.cpu_count() or 0, load, os.getloadavg()[0], platform.python_version(), sdk_version))  # fmt: skip
    print("requests of %d posthog.capture records with 12 properties, protobuf, 2 connections\n" % BATCH)
    print("%-46s %s" % ("", "median of %d runs  [lowest - highest]" % args.runs))
    print("%-46s %s" % ("records per second, one worker", spread(rates)))
    print("%-46s %s" % ("worker CPU per record, µs", spread(cpus, 1)))
    print("%-46s %s" % ("latency send -> PostHog, p50, ms", spread(p50, 1)))
    print("%-46s %s" % ("latency send -> PostHog, p99, ms", spread(p99, 1)))


if __name__ == "__main__":
    main()
