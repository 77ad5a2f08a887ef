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
import collections
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
from typing import Dict, List, Tuple

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

BATCH = 512
KEY = "phc_benchmark0123456789abcdefghijklmnopqr"


# --- the PostHog stand-in (a child process) ------------------------------------------------------


def sink() -> None:
    arrivals: List[int] = []  # ns from the client's stamp to arrival, per event
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # the answer's head and body leave at once, not 40 ms apart

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


#: The properties of each record's capture, by shape: 12 each, ``sent_ns`` (the client's stamp) included.
SHAPES = ("list", "flat")
SHAPE_NAMES = {"list": "12 properties, one a list of 3 strings", "flat": "12 flat scalar properties"}


def properties_of(n: int, sent_ns: int, shape: str) -> Dict[str, object]:
    """Record ``n``'s properties: an id and amounts that differ in every record, and values from small
    sets that repeat as real ones do (plan, country, channel...); ``sent_ns`` is the client's stamp (plus
    ``n`` ns, so that it differs in every record as a real time would)."""
    properties: Dict[str, object] = {
        "sent_ns": sent_ns + n % BATCH, "order_id": "order_%d" % n, "amount": 5 + n * 7919 % 100_000 / 100,
        "currency": ("EUR", "USD", "GBP")[n % 3], "items": 1 + n % 9, "coupon": n % 7 == 0,
        "plan": ("free", "pro", "team")[n % 3], "country": COUNTRIES[n % len(COUNTRIES)],
        "channel": ("web", "ios", "android")[n % 3], "latency_ms": n * 37 % 3000,
        "experiment": ("a", "b")[n % 2], "step": ("cart", "address", "payment", "done")[n % 4],
    }  # fmt: skip
    if shape == "list":  # the shape: a list is an ordinary PostHog property
        del properties["experiment"]
        properties["interests"] = INTERESTS[n % len(INTERESTS)]
    return properties


COUNTRIES = ("DE", "FR", "GB", "US", "ES", "IT", "NL", "SE", "PL", "BR", "JP", "IN")
INTERESTS: Tuple[List[str], ...] = (
    ["books", "music", "travel"],
    ["sports"],
    ["music", "film"],
    ["travel", "food", "books", "art"],
    [],
)


def request_body(first: int, sent_ns: int, shape: str = "list") -> bytes:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    def value(v: object) -> AnyValue:
        if isinstance(v, bool):
            return AnyValue(bool_value=v)
        if isinstance(v, int):
            return AnyValue(int_value=v)
        if isinstance(v, float):
            return AnyValue(double_value=v)
        if isinstance(v, list):
            out = AnyValue()
            out.array_value.values.extend(value(item) for item in v)
            return out
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
        for key, property_value in properties_of(n, sent_ns, shape).items():
            record.body.kvlist_value.values.add(key=key, value=value(property_value))
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


def child_env(tree: str) -> Dict[str, str]:
    """The environment of a child that imports ``posthog_otel`` from ``tree`` (ahead of the installed one)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (tree, os.environ.get("PYTHONPATH"))))}


def one_run(records: int, shape: str, tree: str) -> Tuple[float, float, List[int]]:
    spool = tempfile.mkdtemp(prefix="gateway-bench-")
    posthog = subprocess.Popen([sys.executable, __file__, "--sink"], stdout=subprocess.PIPE, text=True)
    posthog_url = "http://127.0.0.1:%s" % posthog.stdout.readline().strip()  # type: ignore[union-attr]
    env = {**child_env(tree), "POSTHOG_HOST": posthog_url, "POSTHOG_OTEL_SPOOL_DIR": spool}
    gateway = subprocess.Popen([sys.executable, "-m", "posthog_otel.cli", "gateway", "--bind", "127.0.0.1:0",
                                "--workers", "1"], env=env, cwd=tree, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = gateway.stdout.readline()  # type: ignore[union-attr]
        url = re.search(r"(http://127\.0\.0\.1:\d+)/v1/logs", line).group(1)  # type: ignore[union-attr]
        worker = get(url + "/health")["pid"]  # type: ignore[index]
        send(url, [request_body(0, time.time_ns(), shape)], 1)  # warm: the project, its threads, the connection
        while get(posthog_url + "/count")["events"] < BATCH:  # type: ignore[index]
            time.sleep(0.05)
        get(posthog_url + "/latencies")
        bodies = [request_body(i * BATCH, time.time_ns(), shape) for i in range(records // BATCH)]
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
            send(url, [request_body(i * BATCH, time.time_ns(), shape)], 1)  # stamped as it leaves
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


# --- in process: where a worker's CPU goes ---------------------------------------------------------

STAGES = ("decode", "map", "JSON", "gzip")


def stages(shape: str, requests: int = 40) -> None:
    """Child mode: the worker's steps for one request, without HTTP, run ``requests`` times on
    this thread; prints the CPU µs per record of each, as JSON. The steps are the gateway's
    (``_app``: decode and map on the request's thread; ``_delivery``: JSON and gzip on the
    delivery thread), called as they call them."""
    from posthog_otel._delivery.encoding import EncodedBatch, batch_body, compress
    from posthog_otel._mapping import Defaults, to_posthog_events
    from posthog_otel.gateway._otlp import Limits, decode_protobuf
    from posthog_otel.gateway._projects import LIBRARY

    defaults = Defaults(library={"$lib": LIBRARY, "$lib_version": "0", "$is_server": True}, system={})
    bodies = [request_body(i * BATCH, time.time_ns(), shape) for i in range(requests + 3)]  # as many as it reads
    spent = dict.fromkeys(STAGES, 0.0)

    def once(body: bytes) -> None:
        t0 = time.thread_time()
        decoded = decode_protobuf(body, time.time_ns(), Limits(), False)
        t1 = time.thread_time()
        events, _ = to_posthog_events(decoded.operations, defaults)
        t2 = time.thread_time()
        batch, _ = EncodedBatch.encode(events)
        raw = batch_body(KEY, batch.parts, "2024-01-15T10:30:00+00:00", False)
        t3 = time.thread_time()
        compress(raw)
        t4 = time.thread_time()
        for name, took in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            spent[name] += took

    for body in bodies[:3]:  # warm
        once(body)
    spent.update(dict.fromkeys(STAGES, 0.0))
    for body in bodies[3:]:
        once(body)
    print(json.dumps({name: took / (requests * BATCH) * 1e6 for name, took in spent.items()}))


def stage_run(shape: str, tree: str) -> Dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--stages", shape, "--tree", tree], env=child_env(tree),
                         cwd=tree, stdout=subprocess.PIPE, text=True, check=True).stdout  # fmt: skip
    return json.loads(out)  # type: ignore[no-any-return]


# --- the table ------------------------------------------------------------------------------------


def spread(values: List[float], digits: int = 0) -> str:
    form = "%%.%df" % digits
    return "%s [%s-%s]" % (form % statistics.median(values), form % min(values), form % max(values))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shape", action="append", choices=SHAPES, help="a shape to measure (default: all)")
    parser.add_argument("--tree", action="append", metavar="LABEL=DIR",
                        help="run the gateway from this source tree (repeat to compare versions in one session, "
                             "runs alternating); default: this one")  # fmt: skip
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stages", choices=SHAPES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink()
        return
    if args.stages:
        sys.path.insert(0, args.tree[0])
        stages(args.stages)
        return
    from opentelemetry.sdk.version import __version__ as sdk_version

    here = str(pathlib.Path(__file__).resolve().parent.parent)
    trees = [tuple(t.split("=", 1)) if "=" in t else (t, t) for t in args.tree or ["this=" + here]]
    shapes = args.shape or list(SHAPES)
    columns = [(label, tree, shape) for label, tree in trees for shape in shapes]
    load = os.getloadavg()[0]
    figures: Dict[Tuple[str, str, str], Dict[str, List[float]]] = {c: collections.defaultdict(list) for c in columns}
    for _ in range(args.runs):  # alternating: the machine's load falls on every column alike
        for column in columns:
            label, tree, shape = column
            rate, cpu, latencies = one_run(args.records, shape, tree)
            ms = sorted(n / 1e6 for n in latencies)
            seen = figures[column]
            seen["rate"].append(rate)
            seen["cpu"].append(cpu)
            seen["p50"].append(ms[len(ms) // 2])
            seen["p99"].append(ms[int(len(ms) * 0.99)])
            for name, took in stage_run(shape, tree).items():
                seen[name].append(took)
    print("python benchmarks/gateway.py --records %d --runs %d%s" % (args.records, args.runs,
          "".join(" --tree %s=..." % label for label, _ in trees) if args.tree else ""))  # fmt: skip
    print("%d cores (load average %.2f before, %.2f after), Python %s, opentelemetry-sdk %s, gunicorn gthread, 1 worker"
          % (os.cpu_count() or 0, load, os.getloadavg()[0], platform.python_version(), sdk_version))  # fmt: skip
    print("requests of %d posthog.capture records (3 attributes; properties in the body), protobuf, 2 connections;"
          % BATCH)  # fmt: skip
    print("a PostHog stand-in that answers at once. Shapes:")
    for shape in shapes:
        print("  %-5s %s" % (shape, SHAPE_NAMES[shape]))
    print("median of %d runs [lowest-highest]\n" % args.runs)
    width = 24
    head = ["%s, %s" % (label, shape) if len(trees) > 1 else shape for label, _, shape in columns]
    print("%-40s" % "" + "".join("%-*s" % (width, h) for h in head))
    rows = [("worker CPU per record, µs", "cpu", 1), ("records per second, one worker", "rate", 0),
            ("latency send -> PostHog, p50, ms", "p50", 1), ("latency send -> PostHog, p99, ms", "p99", 1)]  # fmt: skip
    rows += [("in process: %s, µs per record" % name, name, 1) for name in STAGES]
    for title, key, digits in rows:
        print("%-40s" % title + "".join("%-*s" % (width, spread(figures[c][key], digits)) for c in columns))


if __name__ == "__main__":
    main()
