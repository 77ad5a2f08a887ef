"""Cost of one operation on the caller's thread: posthog_otel vs PostHog's SDK vs bare OTel emit.

    python benchmarks/emit.py [--calls 10000] [--rounds 5] [--runs 5] > benchmarks/emit-latest.txt

Every row runs in this process against the same loopback server (another process), with
its background thread delivering while the caller is timed; each round ends with a flush
that waits until everything is delivered, so every round starts with an empty queue.  The floor row writes the
same record ``posthog_otel.set`` writes, straight through OTel's ``Logger.emit``, into
the same pipeline (the PostHog exporter under the same batch processor), so the gap
between the two is what posthog_otel itself adds on the caller's thread.

One run times each row ``--rounds`` times and keeps the median; the rows take turns
within a run, so a slow moment on a shared machine hits them alike.  The table shows
the median over ``--runs`` runs and the spread (lowest - highest); so do the ratios,
computed run by run.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Tuple

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk.version import __version__ as sdk_version  # noqa: E402

import posthog_otel  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent

API_KEY = "phc_benchmark0123456789abcdefghijklmnopqrstu"
PROPERTIES = {"email": "user@example.com", "plan": "premium", "age": 28, "verified": True, "score": 95.5}

SET, CAPTURE, FLOOR, SDK_SET, SDK_CAPTURE = (
    "posthog_otel.set(id, props)",
    "posthog_otel.capture(event) in a context",
    "OTel Logger.emit of the same record (floor)",
    "PostHog SDK Client.set(...)",
    "PostHog SDK Client.capture(event) in a context",
)


def per_call_us(call: Callable[[int], object], calls: int, rounds: int, flush: Callable[[], object]) -> float:
    samples = []
    for _ in range(rounds):
        gc.collect()
        started = time.perf_counter()
        for i in range(calls):
            call(i)
        samples.append((time.perf_counter() - started) / calls * 1e6)
        flush()
    return statistics.median(samples)


def ours(calls: int, rounds: int, url: str) -> Tuple[Dict[str, Callable[[], float]], Callable[[], None]]:
    provider = LoggerProvider(shutdown_on_exit=False)
    pipeline = posthog_otel.configure(
        api_key=API_KEY, host=url, logger_provider=provider, max_queue_size=max(calls + 1, 2048)
    )
    floor_logger = provider.get_logger("benchmark")

    def set_() -> float:
        return per_call_us(lambda i: posthog_otel.set("user%d" % i, PROPERTIES), calls, rounds, pipeline.flush)

    def capture() -> float:
        with posthog_otel.new_context():
            posthog_otel.identify_context("user1")
            posthog_otel.tag("request_id", "r-1")
            return per_call_us(lambda i: posthog_otel.capture("viewed", PROPERTIES), calls, rounds, pipeline.flush)

    def floor() -> float:
        return per_call_us(
            lambda i: floor_logger.emit(
                event_name="posthog.set", body=PROPERTIES, attributes={"posthog.distinct_id": "user%d" % i}
            ),
            calls,
            rounds,
            pipeline.flush,
        )

    def close() -> None:
        pipeline.shutdown()
        provider.shutdown()

    return {SET: set_, CAPTURE: capture, FLOOR: floor}, close


def theirs(calls: int, rounds: int, url: str) -> Tuple[Dict[str, Callable[[], float]], Callable[[], None]]:
    try:
        import posthog
    except ImportError:
        return {}, lambda: None
    client = posthog.Client(API_KEY, host=url, max_queue_size=calls + 1)

    def flush() -> None:
        client.flush(timeout_seconds=None)  # until delivered: its default 10 s budget leaves a backlog

    def set_() -> float:
        return per_call_us(lambda i: client.set(distinct_id="user%d" % i, properties=PROPERTIES), calls, rounds, flush)

    def capture() -> float:
        with posthog.new_context(capture_exceptions=False):
            posthog.identify_context("user1")
            posthog.tag("request_id", "r-1")
            return per_call_us(lambda i: client.capture("viewed", properties=PROPERTIES), calls, rounds, flush)

    return {SDK_SET: set_, SDK_CAPTURE: capture}, client.shutdown


def spread(values: List[float], unit: str = "", digits: int = 1) -> str:
    shown = "%.*f%s  [%.*f - %.*f]" % (
        digits,
        statistics.median(values),
        unit,
        digits,
        min(values),
        digits,
        max(values),
    )
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sink = subprocess.Popen(
        [sys.executable, str(HERE / "sink.py"), "--seconds", "86400"], stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None
    url = "http://127.0.0.1:%s" % sink.stdout.readline().strip()
    load_before = _load()
    try:
        our_rows, close_ours = ours(args.calls, args.rounds, url)
        their_rows, close_theirs = theirs(args.calls, args.rounds, url)
        rows = {**our_rows, **their_rows}
        results: Dict[str, List[float]] = {name: [] for name in rows}
        try:
            for _ in range(args.runs):
                for name, measure in rows.items():
                    results[name].append(measure())
        finally:
            close_ours()
            close_theirs()
    finally:
        sink.terminate()
    report(args, results, "%s before, %s after" % (load_before, _load()))


def _load() -> str:
    """The 1-minute load average: on a shared machine, what else was running."""
    return "%.2f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else "?"


def report(args: argparse.Namespace, results: Dict[str, List[float]], load: str) -> None:
    try:
        import posthog

        posthog_version = posthog.VERSION
    except ImportError:
        posthog_version = "not installed"
    print("python benchmarks/emit.py --calls %d --rounds %d --runs %d" % (args.calls, args.rounds, args.runs))
    print(
        "%s cores (load average %s), Python %s, opentelemetry-sdk %s, posthog %s"
        % (os.cpu_count(), load, platform.python_version(), sdk_version, posthog_version)
    )
    print()
    width = max(len(name) for name in results)
    print("%-*s  %s" % (width, "caller-thread cost, µs per call", "median of %d runs  [lowest - highest]" % args.runs))
    for name, values in results.items():
        print("%-*s  %s" % (width, name, spread(values)))
    print()
    gap = [s - f for s, f in zip(results[SET], results[FLOOR])]
    print("%-*s  %s" % (width, "set(): ours over the floor, µs", spread(gap)))
    if SDK_SET in results:
        ratio = [a / b for a, b in zip(results[SET], results[SDK_SET])]
        print("%-*s  %s" % (width, "set(): posthog_otel / PostHog SDK", spread(ratio, "x", 2)))
        ratio = [a / b for a, b in zip(results[CAPTURE], results[SDK_CAPTURE])]
        print("%-*s  %s" % (width, "capture() in a context: ratio", spread(ratio, "x", 2)))


if __name__ == "__main__":
    main()
