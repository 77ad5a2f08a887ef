"""Cost of a local flag evaluation: posthog_otel vs PostHog's SDK, same definitions, same inputs.

    python benchmarks/flags.py [--calls 10000] [--rounds 9]

Both SDKs load the same definitions (a realistic mix: property conditions, rollouts,
variants, a group flag, a cohort, a dependency) from one loopback server with a personal
key, then answer locally; no call here makes a request. Rounds alternate which SDK goes
first; each line gives the median over the rounds in microseconds per call, the spread
(fastest-slowest round), and the ratio of the medians. Target: posthog_otel at most half
of PostHog's SDK for each call.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import logging
import pathlib
import statistics
import sys
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Tuple

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import posthog  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402

import posthog_otel  # noqa: E402

API_KEY = "phc_benchmark0123456789abcdefghijklmnopqrstu"
PERSONAL_KEY = "phx_benchmark0123456789abcdefghijklmnopqrs"


def person(key: str, operator: str, value: Any) -> Dict[str, Any]:
    return {"key": key, "operator": operator, "value": value, "type": "person"}


def flag(key: str, groups: List[Dict[str, Any]], **filters: Any) -> Dict[str, Any]:
    return {"id": len(key), "key": key, "active": True, "version": 3, "filters": {"groups": groups, **filters}}


DEFINITIONS = {
    "flags": [
        flag("new-dashboard", [{"properties": [person("plan", "exact", ["enterprise", "pro"])], "rollout_percentage": 50}],
             payloads={"true": '{"layout": "grid"}'}),
        flag("checkout", [{"properties": [person("email", "icontains", "@acme.com")], "rollout_percentage": 100},
                          {"properties": [], "rollout_percentage": 30}],
             multivariate={"variants": [{"key": "control", "rollout_percentage": 50}, {"key": "test", "rollout_percentage": 50}]}),
        flag("beta-api", [{"properties": [person("age", "gte", 18), person("country", "regex", "^(US|CA|GB)$")],
                           "rollout_percentage": 80}]),
        flag("new-app", [{"properties": [person("app_version", "semver_gte", "2.1.0")], "rollout_percentage": 100}]),
        flag("recent-users", [{"properties": [person("signup", "is_date_after", "-30d")], "rollout_percentage": 100}]),
        flag("team-tools", [{"properties": [{"key": "seats", "operator": "gt", "value": 10, "type": "group", "group_type_index": 0}],
                             "rollout_percentage": 100}], aggregation_group_type_index=0),
        flag("cohort-perk", [{"properties": [{"key": "id", "type": "cohort", "value": 7}], "rollout_percentage": 100}]),
        flag("needs-dashboard", [{"properties": [{"key": "new-dashboard", "type": "flag", "operator": "flag_evaluates_to",
                                                 "value": True, "dependency_chain": ["new-dashboard"]}], "rollout_percentage": 100}]),
        flag("half", [{"properties": [], "rollout_percentage": 50}]),
        flag("everyone", [{"properties": [], "rollout_percentage": 100}]),
    ],
    "group_type_mapping": {"0": "company"},
    "cohorts": {"7": {"type": "OR", "values": [{"type": "AND", "values": [person("plan", "exact", "enterprise")]}]}},
}  # fmt: skip

PROPERTIES = {"plan": "pro", "email": "jane@acme.com", "age": 34, "country": "CA", "app_version": "2.3.1",
              "signup": "2026-01-02T10:00:00Z"}  # fmt: skip
GROUPS = {"company": "acme"}
GROUP_PROPERTIES = {"company": {"seats": 40}}


class _Definitions(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the answer's head and body leave at once, not 40 ms apart

    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps(DEFINITIONS).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 (never expected: every answer here is local)
        raise SystemExit("unexpected POST %s: a flag was not evaluated locally" % self.path)

    def log_message(self, *args: Any) -> None:
        pass


class _Discard:
    def export(self, batch: Any) -> Any:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def per_call_us(call: Callable[[int], Any], calls: int) -> float:
    gc.collect()
    started = time.perf_counter()
    for i in range(calls):
        call(i)
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    warnings.simplefilter("ignore", DeprecationWarning)  # PostHog's SDK deprecates its single-flag getters
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Definitions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d" % server.server_address[1]

    theirs = posthog.Client(API_KEY, host=url, secret_key=PERSONAL_KEY, send=False)
    theirs.load_feature_flags()
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(_Discard()))  # type: ignore[arg-type]
    posthog_otel.configure(api_key=API_KEY, host=url, personal_api_key=PERSONAL_KEY, logger_provider=provider)
    assert posthog_otel.load_feature_flags()

    ids = ["user-%d" % i for i in range(100)]
    fresh = itertools.count()
    cases: List[Tuple[str, Callable[[Any], Callable[[int], Any]]]] = [
        ("get_feature_flag, no event", lambda api: lambda i: api.get_feature_flag(
            "checkout", ids[i % 100], person_properties=PROPERTIES, send_feature_flag_events=False)),
        ("get_feature_flag, event (deduplicated)", lambda api: lambda i: api.get_feature_flag(
            "new-dashboard", ids[i % 100], person_properties=PROPERTIES)),
        ("feature_enabled, group flag", lambda api: lambda i: api.feature_enabled(
            "team-tools", ids[i % 100], groups=GROUPS, group_properties=GROUP_PROPERTIES, send_feature_flag_events=False)),
        ("get_all_flags (10 flags)", lambda api: lambda i: api.get_all_flags(
            ids[i % 100], groups=GROUPS, person_properties=PROPERTIES, group_properties=GROUP_PROPERTIES)),
        # posthog_otel keeps recent buckets (sha1s) in memory; a new person each call gets none of that.
        ("get_all_flags, a new person each call", lambda api: lambda i: api.get_all_flags(
            "new-%d" % next(fresh), groups=GROUPS, person_properties=PROPERTIES, group_properties=GROUP_PROPERTIES)),
    ]  # fmt: skip
    for _, make in cases[:-1]:  # the same answers, or the comparison means nothing
        for i in range(100):
            assert make(posthog_otel)(i) == make(theirs)(i), "the two SDKs disagree"

    lines = ["local flag evaluation, µs per call: median over %d rounds of %d calls (fastest-slowest round)"
             % (args.rounds, args.calls), ""]  # fmt: skip
    lines.append("%-40s %24s %24s %7s" % ("call", "posthog_otel", "PostHog SDK 7.91.1", "ratio"))
    for name, make in cases:
        ours: List[float] = []
        reference: List[float] = []
        for round_number in range(args.rounds):
            pair = [(ours, make(posthog_otel)), (reference, make(theirs))]
            for samples, call in pair if round_number % 2 == 0 else reversed(pair):
                samples.append(per_call_us(call, args.calls))
        ratio = statistics.median(ours) / statistics.median(reference)
        lines.append("%-40s %24s %24s %7.2f" % (name, _spread(ours), _spread(reference), ratio))
    lines.append("")
    lines.append("ratio = posthog_otel median / PostHog SDK median (target: at most 0.50)")
    print("\n".join(lines))
    theirs.shutdown()


def _spread(samples: List[float]) -> str:
    return "%.1f (%.1f-%.1f)" % (statistics.median(samples), min(samples), max(samples))


if __name__ == "__main__":
    main()
