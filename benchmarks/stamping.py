"""Cost of the context's person on every span and log record (``context_attributes``), against a bare
span or record, and PostHog's own span processor side by side.

    python benchmarks/stamping.py [--calls 20000] [--rounds 7] > benchmarks/stamping-latest.txt

CPU time of the calling thread per span started-and-ended (or per record emitted), the median of
``--rounds`` rounds with [lowest - highest], on the real SDK providers with no exporter (what is
measured is the processors' work, not an export). Rows: no processor (bare), ours outside any
context, ours inside an identified context (six attributes added), with tags, and PostHog's
``PostHogContextSpanProcessor`` (7.91.1, two attributes) inside its own identified context.
"""

from __future__ import annotations

import argparse
import gc
import pathlib
import platform
import statistics
import sys
import time
from typing import Callable, List

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.version import __version__ as sdk_version  # noqa: E402

import posthog_otel  # noqa: E402
from posthog_otel._stamping import PostHogContextLogRecordProcessor, PostHogContextSpanProcessor  # noqa: E402


def cpu_per_call(call: Callable[[], object], calls: int, rounds: int) -> List[float]:
    samples = []
    for _ in range(rounds):
        gc.collect()
        started = time.thread_time()
        for _ in range(calls):
            call()
        samples.append((time.thread_time() - started) / calls * 1e6)
    return samples


def spans(processor) -> Callable[[], object]:
    provider = TracerProvider()
    if processor is not None:
        provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")

    def one() -> None:
        with tracer.start_as_current_span("work"):
            pass

    return one


def records(processor) -> Callable[[], object]:
    provider = LoggerProvider(shutdown_on_exit=False)
    if processor is not None:
        provider.add_log_record_processor(processor)
    logger = provider.get_logger("bench")
    return lambda: logger.emit(body="order placed", attributes={"order": 1})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with_tags = PostHogContextSpanProcessor(tags=True)
    variants = [  # (name, one call, context: None, "ours", "ours+tags" or "posthog")
        ("span, bare", spans(None), None),
        ("span, ours, no context", spans(PostHogContextSpanProcessor()), None),
        ("span, ours, identified", spans(PostHogContextSpanProcessor()), "ours"),
        ("span, ours, identified + 5 tags", spans(with_tags), "ours+tags"),
        ("record, bare", records(None), None),
        ("record, ours, no context", records(PostHogContextLogRecordProcessor()), None),
        ("record, ours, identified", records(PostHogContextLogRecordProcessor()), "ours"),
    ]
    try:
        import posthog
        from posthog.integrations.otel import PostHogContextSpanProcessor as Theirs

        posthog.api_key = "phc_benchmark"
        variants.append(("span, PostHog's processor, identified", spans(Theirs()), "posthog"))
    except ImportError:
        posthog = None
    samples: dict = {name: [] for name, _, _ in variants}
    for _ in range(args.rounds):  # rounds interleaved: a busy moment of the machine hits every row alike
        for name, call, context in variants:
            samples[name] += cpu_per_call(call, args.calls, 1) if context is None else in_context(
                context, lambda call=call: cpu_per_call(call, args.calls, 1), posthog)  # fmt: skip
    print("# CPU us per span (start + end) or record (emit); median [lowest - highest] of %d rounds x %d"
          % (args.rounds, args.calls))  # fmt: skip
    print("# Python %s, opentelemetry-sdk %s, %s" % (platform.python_version(), sdk_version, platform.machine()))
    bare = {kind: statistics.median(samples[kind + ", bare"]) for kind in ("span", "record")}
    for name, _, _ in variants:
        median = statistics.median(samples[name])
        print("%-42s %7.2f us  [%.2f - %.2f]  %+6.2f us over bare" % (
            name, median, min(samples[name]), max(samples[name]), median - bare[name.split(",")[0]]))  # fmt: skip


def in_context(which: str, run: Callable[[], List[float]], posthog=None) -> List[float]:
    sdk = posthog if which == "posthog" else posthog_otel
    with sdk.new_context():
        sdk.identify_context("user-123")
        sdk.set_context_session("session-456")
        if which == "ours+tags":
            for n in range(5):
                sdk.tag("tag%d" % n, "value")
        return run()


if __name__ == "__main__":
    main()
