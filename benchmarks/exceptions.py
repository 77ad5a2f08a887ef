"""Caller's cost of the five operations and of ``capture_exception``, posthog_otel vs PostHog's SDK.

    python benchmarks/exceptions.py [--calls 5000] [--rounds 7] > benchmarks/exceptions-latest.txt

CPU time of the calling thread per call (``thread_time``: what a request path pays, steadier
than wall time on a shared machine), the median of ``--rounds`` rounds with [lowest - highest];
each round ends with a flush that waits until everything is delivered to a loopback PostHog
stand-in (``sink.py``, another process). Run from another checkout (copy this file into its
``benchmarks/``), the five operations' rows compare two versions of posthog_otel on the same
machine; ``capture_exception`` rows are left out where it does not exist.

``capture_exception`` is timed on exceptions raised beforehand (the raise is the
application's cost, not ours) through a stack of ``--depth`` frames of this file, each a
distinct exception object (both SDKs send an exception object once). posthog_otel's rate
limit is lifted for that row (it would send 50 and count the rest: see the next row, the
cost of a call it refuses).
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
from typing import Callable, Dict, List, Optional

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk.version import __version__ as sdk_version  # noqa: E402

import posthog_otel  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
API_KEY = "phc_benchmark0123456789abcdefghijklmnopqrstu"
PROPERTIES = {"email": "user@example.com", "plan": "premium", "age": 28, "verified": True, "score": 95.5}


def cpu_per_call(
    call: Callable[[int], object], calls: int, rounds: int, flush: Callable[[], object],
    prepare: Callable[[], object] = lambda: None,
) -> List[float]:  # fmt: skip
    samples = []
    for _ in range(rounds):
        prepare()
        gc.collect()
        started = time.thread_time()
        for i in range(calls):
            call(i)
        samples.append((time.thread_time() - started) / calls * 1e6)
        flush()
    return samples


def raised(count: int, depth: int) -> List[BaseException]:
    """``count`` exceptions, each raised through ``depth`` frames and caught."""

    def dive(level: int, n: int) -> None:
        if level == 0:
            raise ConnectionError("upstream refused request %d" % n)
        dive(level - 1, n)

    out: List[BaseException] = []
    for n in range(count):
        try:
            dive(depth, n)
        except ConnectionError as error:
            out.append(error)
    return out


def ours(args: argparse.Namespace, url: str) -> Dict[str, List[float]]:
    provider = LoggerProvider(shutdown_on_exit=False)
    pipeline = posthog_otel.configure(
        api_key=API_KEY, host=url, logger_provider=provider, max_queue_size=args.calls + 1
    )
    calls, rounds, flush = args.calls, args.rounds, pipeline.flush
    rows = {
        "set(id, props)": lambda: cpu_per_call(lambda i: posthog_otel.set("user%d" % i, PROPERTIES), calls, rounds, flush),
        "set_once(id, props)": lambda: cpu_per_call(lambda i: posthog_otel.set_once("user%d" % i, PROPERTIES), calls, rounds, flush),
        "group_identify(type, key, props)": lambda: cpu_per_call(
            lambda i: posthog_otel.group_identify("company", "acme%d" % i, PROPERTIES), calls, rounds, flush),
        "alias(previous, id)": lambda: cpu_per_call(lambda i: posthog_otel.alias("anon%d" % i, "user%d" % i), calls, rounds, flush),
        "capture(event, props) in a context": lambda: in_context(
            lambda: cpu_per_call(lambda i: posthog_otel.capture("viewed", PROPERTIES), calls, rounds, flush)),
    }  # fmt: skip
    if hasattr(posthog_otel, "capture_exception"):
        from posthog_otel._exceptions import limits

        errors: List[BaseException] = []

        def prepare() -> None:
            errors[:] = raised(calls, args.depth)

        def capture_exception() -> List[float]:
            allow, limits.calls.allow = limits.calls.allow, lambda key: True  # type: ignore[method-assign]
            try:
                return in_context(
                    lambda: cpu_per_call(
                        lambda i: posthog_otel.capture_exception(errors.pop()), calls, rounds, flush, prepare
                    )
                )
            finally:
                limits.calls.allow = allow  # type: ignore[method-assign]

        def refused() -> List[float]:
            limits.calls.reset()
            logging.getLogger("posthog_otel").setLevel(logging.CRITICAL)
            return cpu_per_call(lambda i: posthog_otel.capture_exception(errors.pop()), calls, rounds, flush, prepare)

        rows["capture_exception(e) in a context, %d frames" % (args.depth + 2)] = capture_exception
        rows["capture_exception(e), refused by the rate limit"] = refused
    results = {name: measure() for name, measure in rows.items()}
    pipeline.shutdown()
    provider.shutdown()
    return results


def in_context(measure: Callable[[], List[float]]) -> List[float]:
    with posthog_otel.new_context():
        posthog_otel.identify_context("user1")
        posthog_otel.tag("request_id", "r-1")
        return measure()


def theirs(args: argparse.Namespace, url: str) -> Dict[str, List[float]]:
    try:
        import posthog
    except ImportError:
        return {}
    client = posthog.Client(API_KEY, host=url, max_queue_size=args.calls + 1)

    def flush() -> None:
        client.flush(timeout_seconds=None)

    errors: List[BaseException] = []

    def prepare() -> None:
        errors[:] = raised(args.calls, args.depth)

    def capture_exception() -> List[float]:
        with posthog.new_context(capture_exceptions=False):
            posthog.identify_context("user1")
            posthog.tag("request_id", "r-1")
            return cpu_per_call(
                lambda i: client.capture_exception(errors.pop()), args.calls, args.rounds, flush, prepare
            )

    results = {"PostHog SDK capture_exception(e) in a context, %d frames" % (args.depth + 2): capture_exception()}
    client.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--depth", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sink = subprocess.Popen(
        [sys.executable, str(HERE / "sink.py"), "--seconds", "86400"], stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None
    url = "http://127.0.0.1:%s" % sink.stdout.readline().strip()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    try:
        results = {**ours(args, url), **(theirs(args, url) if hasattr(posthog_otel, "capture_exception") else {})}
    finally:
        sink.terminate()
    report(args, results, load)


def report(args: argparse.Namespace, results: Dict[str, List[float]], load: Optional[float]) -> None:
    print("python benchmarks/exceptions.py --calls %d --rounds %d --depth %d" % (args.calls, args.rounds, args.depth))
    print("posthog_otel at %s; %s cores (load average %.2f before), Python %s, opentelemetry-sdk %s"
          % (pathlib.Path(posthog_otel.__file__).parent.parent, os.cpu_count(), load, platform.python_version(),
             sdk_version))  # fmt: skip
    print()
    width = max(len(name) for name in results)
    print(
        "%-*s  %s"
        % (width, "caller's thread CPU, µs per call", "median of %d rounds  [lowest - highest]" % args.rounds)
    )
    for name, values in results.items():
        print("%-*s  %.1f  [%.1f - %.1f]" % (width, name, statistics.median(values), min(values), max(values)))


if __name__ == "__main__":
    main()
