"""Cost of one operation on the caller's thread: posthog_otel vs PostHog's SDK vs bare OTel emit.

    python benchmarks/emit.py [--calls 20000] [--rounds 5]

All three run in this process against the same loopback server (127.0.0.1), with their
background threads delivering while the caller is timed.  Prints the median of several
rounds, in microseconds per call.  Target: posthog_otel.set() under half of PostHog's SDK.
"""

from __future__ import annotations

import argparse
import gc
import logging
import pathlib
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor  # noqa: E402

import posthog_otel  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent

API_KEY = "phc_benchmark0123456789abcdefghijklmnopqrstu"
PROPERTIES = {"email": "user@example.com", "plan": "premium", "age": 28, "verified": True, "score": 95.5}


class _Discard:
    def export(self, batch):
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        return LogRecordExportResult.SUCCESS

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=30000):
        return True


def per_call_us(call, calls: int, rounds: int, flush) -> float:
    samples = []
    for _ in range(rounds):
        gc.collect()
        started = time.perf_counter()
        for i in range(calls):
            call(i)
        samples.append((time.perf_counter() - started) / calls * 1e6)
        flush()
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sink = subprocess.Popen([sys.executable, str(HERE / "sink.py")], stdout=subprocess.PIPE, text=True)
    url = "http://127.0.0.1:%s" % sink.stdout.readline().strip()
    rows = []

    provider = LoggerProvider(shutdown_on_exit=False)
    pipeline = posthog_otel.configure(
        api_key=API_KEY, host=url, logger_provider=provider, max_queue_size=args.calls + 1
    )
    rows.append(
        (
            "posthog_otel.set(id, props)",
            per_call_us(lambda i: posthog_otel.set("user%d" % i, PROPERTIES), args.calls, args.rounds, pipeline.flush),
        )
    )
    with posthog_otel.new_context():
        posthog_otel.identify_context("user1")
        posthog_otel.tag("request_id", "r-1")
        rows.append(
            (
                "posthog_otel.capture(event) in a context",
                per_call_us(lambda i: posthog_otel.capture("viewed", PROPERTIES), args.calls, args.rounds, pipeline.flush),
            )
        )
    pipeline.shutdown()

    bare_provider = LoggerProvider(shutdown_on_exit=False)
    bare_provider.add_log_record_processor(
        BatchLogRecordProcessor(exporter=_Discard(), max_queue_size=args.calls + 1)
    )
    bare = bare_provider.get_logger("bench")
    rows.append(
        (
            "bare OTel Logger.emit(body, attributes)",
            per_call_us(
                lambda i: bare.emit(body=PROPERTIES, attributes={"posthog.distinct_id": "u"}, event_name="x"),
                args.calls,
                args.rounds,
                lambda: bare_provider.force_flush(),
            ),
        )
    )
    bare_provider.shutdown()

    try:
        import posthog
    except ImportError:
        posthog = None
    if posthog is not None:
        client = posthog.Client(API_KEY, host=url, max_queue_size=args.calls * args.rounds + 1)
        rows.append(
            (
                "posthog SDK %s Client.set(...)" % posthog.VERSION,
                per_call_us(
                    lambda i: client.set(distinct_id="user%d" % i, properties=PROPERTIES),
                    args.calls,
                    args.rounds,
                    client.flush,
                ),
            )
        )
        with posthog.new_context(capture_exceptions=False):
            posthog.identify_context("user1")
            posthog.tag("request_id", "r-1")
            rows.append(
                (
                    "posthog SDK Client.capture(event) in a context",
                    per_call_us(lambda i: client.capture("viewed", properties=PROPERTIES), args.calls, args.rounds, client.flush),
                )
            )
        client.shutdown()
    sink.terminate()

    width = max(len(name) for name, _ in rows)
    print("%-*s  %8s" % (width, "caller-thread cost per call", "µs"))
    for name, value in rows:
        print("%-*s  %8.1f" % (width, name, value))
    if posthog is not None:
        print("set: posthog_otel / posthog SDK = %.2f" % (rows[0][1] / rows[3][1]))
        print("capture in a context: posthog_otel / posthog SDK = %.2f" % (rows[1][1] / rows[4][1]))


if __name__ == "__main__":
    main()
