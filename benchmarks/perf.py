"""What an operation costs: posthog_otel, PostHog's SDK and the bare OTel SDK, side by side.

    python benchmarks/perf.py [--calls 20000] [--rounds 3] > benchmarks/perf-latest.txt

Every figure is measured in a fresh process per SDK and round, the SDKs taking turns within a
round, against loopback PostHog stand-ins (``sink.py``, other processes, so they do not share
our GIL; ``TCP_NODELAY`` on, and one answers at once, one after a stated 30 ms round trip).
Figures are medians over the rounds with [lowest - highest].

Three shapes of properties, 12 each: ``flat`` (text, numbers, booleans), ``nested`` (10 of
those, a list of three strings and a map of two), ``typed`` (10 of those, a ``datetime`` and a
``uuid.UUID``). Lists, maps, datetimes and UUIDs are ordinary PostHog properties: the rows
without a shape are measured with ``flat``.

  caller's thread        CPU time of the calling thread per ``set(id, props)`` (``thread_time``:
                         what the request path pays, and steadier than wall time on a shared machine)
  our share              caller's CPU of "posthog_otel into it" minus "OTel SDK alone": what
                         posthog_otel itself adds on the caller's thread, same pipeline
  total CPU              process CPU time, all threads, from the first call until the sink has
                         every event (``flush`` until delivered), per operation
  throughput             operations per second over that same span, end to end
  bytes on the wire      request bytes the sink read (request line, headers, body) per operation
  import                 ``import posthog_otel`` / ``import posthog`` in a fresh process, nothing
                         imported before, bytecode compiled (as installed); "warm" is after the OTel
                         SDK's logs modules and ``requests`` are already imported (an OTel
                         application that makes HTTP calls)
  set-up                 ``configure(api_key, host)`` / ``posthog.Client(api_key, host)``
  memory per pending op  traced Python memory held per operation while PostHog never answers:
                         right after 10,000 calls, and 3 s later (ours has spooled them to disk)
  exit                   a script that flushed everything and returns: seconds until the process ends

Rows, all with each SDK's defaults: ``posthog_otel.configure(api_key=..., host=...)`` (the OTel
SDK's batch processor: queue 2048, batch 512, 1 s delay; gzip; spool on) and
``posthog.Client(api_key, host=...)`` (100 per request, no gzip, shutdown at exit; its queue made
large enough for every call, as otherwise it drops what is past 10,000). The
"OTel SDK alone" column is ``Logger.emit`` of the record ``set()`` writes, built inline, into the
OTel SDK's ``BatchLogRecordProcessor`` with an exporter that does nothing: the part of our cost
that belongs to the OTel SDK itself. "posthog_otel into it" is ``posthog_otel.set`` into that
same pipeline: the difference between the two is what posthog_otel adds on the caller's thread,
and the difference between it and "posthog_otel" is what sharing two cores with the exporter's
threads (mapping, JSON, gzip, HTTP) costs the caller. The spool's drain rate is in ``benchmarks/reliability.py``
(scenario backlog-drain).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import pathlib
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, Dict, List

HERE = pathlib.Path(__file__).resolve().parent
API_KEY = "phc_performance0123456789abcdefghijklmnop"
PROPERTIES_12 = {
    "email": "user@example.com", "plan": "premium", "age": 28, "verified": True, "score": 95.5, "name": "Jane Doe",
    "company": "Acme", "signup": "2024-01-01", "country": "FR", "beta": False, "logins": 17, "ratio": 0.25,
}  # fmt: skip
SHAPES = ("flat", "nested", "typed")
#: Delays of the two stand-ins: at once, and a stated round trip.
DELAYS_MS = (0, 30)


def properties_of(shape: str) -> Dict[str, Any]:
    """The 12 properties of a shape (built in the worker: datetimes and UUIDs are not JSON)."""
    import datetime
    import uuid

    first = dict(list(PROPERTIES_12.items())[:10])
    if shape == "nested":
        return {**first, "interests": ["analytics", "dashboards", "sql"], "address": {"city": "Paris", "zip": "75001"}}
    if shape == "typed":
        return {**first, "signed_up_at": datetime.datetime(2024, 1, 15, 10, 30, tzinfo=datetime.timezone.utc),
                "account": uuid.UUID("12345678-1234-5678-1234-567812345678")}  # fmt: skip
    return dict(PROPERTIES_12)


SDKS = ("ours", "posthog", "otel", "ours-idle")
NAMES = {"ours": "posthog_otel", "posthog": "PostHog SDK", "otel": "OTel SDK alone",
         "ours-idle": "posthog_otel into it"}  # fmt: skip

# --- the measured process ----------------------------------------------------------------


def worker(sdk: str, mode: str, url: str, calls: int, shape: str, spool: str) -> Dict[str, Any]:
    properties = properties_of(shape)
    out: Dict[str, Any] = {}
    if mode == "memory":
        import tracemalloc

        tracemalloc.start()
    started = time.perf_counter()
    if sdk == "ours":
        import posthog_otel as api
    elif sdk == "posthog":
        import posthog
    else:
        from opentelemetry.sdk._logs import LoggerProvider

        if sdk == "ours-idle":
            import posthog_otel as api
    out["import_s"] = time.perf_counter() - started
    if sdk == "otel":  # the body set() would write, converted before the timing starts
        from posthog_otel._properties import sanitize_properties

        properties = sanitize_properties(properties)
    started = time.perf_counter()
    if sdk == "ours":
        pipeline = api.configure(api_key=API_KEY, host=url, spool_dir=spool)

        def call(i: int) -> None:
            api.set("user%d" % i, properties)

        flush = pipeline.flush
    elif sdk == "posthog":
        import atexit

        # Its queue holds every call (default 10,000, and the rest would be dropped, not measured).
        client = posthog.Client(API_KEY, host=url, max_queue_size=max(calls + 1, 10000))
        atexit.register(client.shutdown)  # as its docs say

        def call(i: int) -> None:
            client.set(distinct_id="user%d" % i, properties=properties)

        def flush() -> None:
            client.flush(timeout_seconds=None)
    else:
        call, flush = _otel_alone(LoggerProvider, properties, sdk == "ours-idle")
    out["setup_s"] = time.perf_counter() - started
    if mode == "memory":
        import tracemalloc

        base = tracemalloc.get_traced_memory()[0]
        for i in range(calls):
            call(i)
        out["pending_now"] = (tracemalloc.get_traced_memory()[0] - base) / calls
        time.sleep(3)
        out["pending_3s"] = (tracemalloc.get_traced_memory()[0] - base) / calls
        os._exit(print(json.dumps(out), flush=True) or 0)  # nothing will ever be delivered: no exit wait
    call(-1)
    flush()  # connections open, threads started: the loop below measures steady work
    cpu, wall = time.process_time(), time.perf_counter()
    caller = time.thread_time()
    for i in range(calls):
        call(i)
    out["caller_us"] = (time.thread_time() - caller) / calls * 1e6
    out["caller_wall_us"] = (time.perf_counter() - wall) / calls * 1e6
    flush()
    out["cpu_us"] = (time.process_time() - cpu) / calls * 1e6
    out["ops_per_s"] = calls / (time.perf_counter() - wall)
    if sdk == "ours":
        out["drops"] = api.drop_counts()
    if mode == "exit":
        print(json.dumps(out), flush=True)
        print("done %.6f" % time.time(), flush=True)
    return out


def _otel_alone(provider_class: Any, properties: Dict[str, Any], through_ours: bool) -> Any:
    """The OTel SDK alone writes the record ``set()`` writes: its body the properties as sent
    (JSON-ready: the worker converted them once, outside the timing)."""
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult

    class Nothing(LogRecordExporter):
        def export(self, batch: Any) -> Any:
            return LogRecordExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    provider = provider_class()
    provider.add_log_record_processor(BatchLogRecordProcessor(Nothing(), schedule_delay_millis=1000))
    if through_ours:  # posthog_otel.set into the same pipeline: the difference is what we add
        from opentelemetry._logs import set_logger_provider

        import posthog_otel

        set_logger_provider(provider)
        return (lambda i: posthog_otel.set("user%d" % i, properties)), provider.force_flush
    logger = provider.get_logger("posthog_otel")
    sequence = iter(range(1, 1 << 62))

    def call(i: int) -> None:
        logger.emit(
            timestamp=time.time_ns(),
            severity_number=SeverityNumber.INFO,
            body=dict(properties),
            attributes={"posthog.distinct_id": "user%d" % i, "posthog.uuid": "019c0000-0000-7000-8000-000000000000",
                        "posthog.seq": next(sequence)},
            event_name="posthog.set",
        )  # fmt: skip

    return call, lambda: provider.force_flush()


# --- the runner ----------------------------------------------------------------------------


class Sink:
    def __init__(self, delay_ms: float = 0.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "sink.py"), "--seconds", "86400", "--delay-ms", str(delay_ms)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        self.url = "http://127.0.0.1:%s" % self.process.stdout.readline().strip()

    def counts(self) -> Dict[str, int]:
        with urllib.request.urlopen(self.url + "/count", timeout=10) as answer:
            return json.loads(answer.read())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def run_worker(sdk: str, mode: str, url: str, calls: int, shape: str) -> Dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTHOG_", "OTEL_"))}
    env["PYTHONPATH"] = str(HERE.parent)
    with tempfile.TemporaryDirectory() as spool, tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            [sys.executable, __file__, "--worker", sdk, mode, url, str(calls), shape, spool],
            stdout=subprocess.PIPE, stderr=errors, text=True, env=env,
        )  # fmt: skip
        assert process.stdout is not None
        result = json.loads(process.stdout.readline() or "{}")
        if mode == "exit":
            done = float(process.stdout.readline().split()[1])
            process.wait()
            result["exit_s"] = time.time() - done
        process.communicate()
        if process.returncode or not result:
            errors.seek(0)
            raise SystemExit("%s %s failed (%s): %s" % (sdk, mode, process.returncode, errors.read()[-2000:]))
    return result


def warm_import(sdk: str) -> float:
    """Seconds to import the package in a process that already has the OTel SDK and requests."""
    module = {"ours": "posthog_otel", "posthog": "posthog"}[sdk]
    code = ("import time, requests, opentelemetry.sdk._logs, opentelemetry.sdk._logs.export\n"
            "t = time.perf_counter(); import %s; print(time.perf_counter() - t)" % module)  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    return float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    )


def blackhole() -> socket.socket:
    """A PostHog that accepts connections and never answers."""
    return socket.create_server(("127.0.0.1", 0), backlog=1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", nargs=6)
    args = parser.parse_args()
    if args.worker:
        sdk, mode, url, calls, shape, spool = args.worker
        result = worker(sdk, mode, url, int(calls), shape, spool)
        if mode != "exit":
            print(json.dumps(result), flush=True)
        return
    # Import times are of bytecode, as an installed package has it (pip compiles it): a checkout
    # run with PYTHONDONTWRITEBYTECODE would compile every module at every import.
    compileall.compile_dir(str(HERE.parent / "posthog_otel"), quiet=1)
    load_before = os.getloadavg()[0]
    sinks = {delay: Sink(delay) for delay in DELAYS_MS}
    hole = blackhole()
    hole_url = "http://127.0.0.1:%d" % hole.getsockname()[1]
    figures: Dict[str, Dict[str, List[float]]] = {sdk: {} for sdk in SDKS}

    def add(sdk: str, name: str, value: float) -> None:
        figures[sdk].setdefault(name, []).append(value)

    try:
        for _ in range(args.rounds):
            runs = [(shape, 0) for shape in SHAPES] + [("flat", DELAYS_MS[1])]
            for shape, delay in runs:
                sink = sinks[delay]
                for sdk in SDKS if delay == 0 else ("ours", "posthog"):
                    before = sink.counts()
                    result = run_worker(
                        sdk, "exit" if shape == "flat" and delay == 0 else "run", sink.url, args.calls, shape
                    )
                    after = sink.counts()
                    tag = " %s" % shape if delay == 0 else " %dms" % delay
                    if delay == 0:
                        add(sdk, "caller" + tag, result["caller_us"])
                        add(sdk, "caller wall" + tag, result["caller_wall_us"])
                        add(sdk, "cpu" + tag, result["cpu_us"])
                    add(sdk, "throughput" + tag, result["ops_per_s"])
                    if sdk in ("ours", "posthog"):
                        delivered = after["events"] - before["events"]
                        add(sdk, "lost" + tag, args.calls + 1 - delivered)
                        if result.get("drops"):
                            print("%s (%s) counted drops: %s" % (sdk, tag.strip(), result["drops"]), file=sys.stderr)
                        if delay == 0:
                            add(sdk, "bytes" + tag, (after["bytes"] - before["bytes"]) / max(delivered, 1))
                    if shape == "flat" and delay == 0:
                        add(sdk, "import", result["import_s"])
                        add(sdk, "setup", result["setup_s"])
                        add(sdk, "exit", result["exit_s"])
            for shape in SHAPES:  # what posthog_otel adds over the bare OTel emit, round by round
                add(
                    "ours",
                    "share " + shape,
                    figures["ours-idle"]["caller " + shape][-1] - figures["otel"]["caller " + shape][-1],
                )
            for sdk in ("ours", "posthog"):
                add(sdk, "import warm", warm_import(sdk))
                memory = run_worker(sdk, "memory", hole_url, 10000, "flat")
                add(sdk, "pending now", memory["pending_now"])
                add(sdk, "pending 3s", memory["pending_3s"])
    finally:
        for sink in sinks.values():
            sink.stop()
        hole.close()
    report(args, figures, "%.2f before, %.2f after" % (load_before, os.getloadavg()[0]))


ROWS = [  # (figure, label, unit, digits, scale)
    *(("caller " + shape, "caller's thread per call, CPU (%s)" % shape, "µs", 1, 1) for shape in SHAPES),
    *(("share " + shape, "our share over the bare OTel emit (%s)" % shape, "µs", 1, 1) for shape in SHAPES),
    ("caller wall flat", "caller's thread per call, wall (flat)", "µs", 1, 1),
    *(("cpu " + shape, "total CPU per operation, all threads (%s)" % shape, "µs", 1, 1) for shape in SHAPES),
    ("throughput flat", "end-to-end throughput, answered at once (flat)", "k ops/s", 1, 1e-3),
    ("throughput 30ms", "end-to-end throughput, answered after 30 ms (flat)", "k ops/s", 1, 1e-3),
    *(("lost " + shape, "operations lost of each burst (%s)" % shape, "", 0, 1) for shape in SHAPES),
    ("lost 30ms", "operations lost of each burst (30 ms)", "", 0, 1),
    ("bytes flat", "bytes on the wire per operation (flat)", "B", 0, 1),
    ("bytes nested", "bytes on the wire per operation (nested)", "B", 0, 1),
    ("import", "import, cold (nothing imported before)", "ms", 0, 1e3),
    ("import warm", "import, OTel SDK logs and requests already imported", "ms", 0, 1e3),
    ("setup", "configure() / Client()", "ms", 1, 1e3),
    ("pending now", "memory per pending operation, at once", "B", 0, 1),
    ("pending 3s", "memory per pending operation, 3 s later", "B", 0, 1),
    ("exit", "exit with nothing pending", "s", 2, 1),
]


def spread(values: List[float], scale: float, digits: int) -> str:
    values = [v * scale for v in values]
    return "%.*f [%.*f-%.*f]" % (digits, statistics.median(values), digits, min(values), digits, max(values))


def report(args: argparse.Namespace, figures: Dict[str, Dict[str, List[float]]], load: str) -> None:
    import opentelemetry.sdk.version
    import posthog

    print("python benchmarks/perf.py --calls %d --rounds %d" % (args.calls, args.rounds))
    print("%s cores (load average %s), Python %s, opentelemetry-sdk %s, posthog %s" % (
        os.cpu_count(), load, platform.python_version(), opentelemetry.sdk.version.__version__, posthog.VERSION))  # fmt: skip
    print(
        "medians of %d rounds [lowest-highest]; ratio = posthog_otel / PostHog SDK, computed round by round"
        % args.rounds
    )
    print("stand-ins: TCP_NODELAY, answering at once and after 30 ms; shapes: flat, nested (a list and a map), "
          "typed (a datetime and a UUID), 12 properties each")  # fmt: skip
    print()
    head = ("figure", "unit", NAMES["ours"], NAMES["posthog"], "ratio", NAMES["otel"], NAMES["ours-idle"])
    print("| %s |" % " | ".join(head))
    print("|%s|" % "|".join("---" for _ in head))
    for key, label, unit, digits, scale in ROWS:
        ours, theirs, otel, idle = (figures[sdk].get(key) for sdk in SDKS)
        ratio = "-"
        if ours and theirs and all(theirs):
            ratio = spread([a / b for a, b in zip(ours, theirs)], 1, 2)
        cells = [spread(v, scale, digits) if v else "-" for v in (ours, theirs, otel, idle)]
        print("| %s | %s | %s | %s | %s | %s | %s |" % (label, unit, cells[0], cells[1], ratio, cells[2], cells[3]))


if __name__ == "__main__":
    main()
