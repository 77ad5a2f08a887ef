"""Run PostHog's SDK compliance harness against posthog-otel (or, for comparison, PostHog's SDK).

    python -m tests.harness.run                 # posthog-otel, every profile; what .ci/run runs
    python -m tests.harness.run --sdk posthog   # PostHog's Python SDK, through the same harness

The harness (PostHog's ``posthog-sdk-test-harness``) is read from ``../shared/vendor/`` beside
the repository, or ``--harness``; it needs Python >= 3.10 and ``flask aiohttp click pyyaml``
(in the dev extra). Its mock PostHog runs here, in this process, on a loopback port the OS
chooses, and each adapter (``adapter.py``, ``posthog_adapter.py``) in a process of its own on
another. One adapter process speaks one capture protocol, as PostHog runs its own:

- ``batch``: ``/batch/``, the ``capture`` and ``feature_flags`` suites (and ``capture_ai``, for
  an SDK that declares PostHog's AI capture lane: PostHog's does, posthog-otel has none);
- ``v1``: Capture V1, the ``capture_v1`` suite, gzip;
- ``v1-deflate``, ``v1-zstd``: the Capture V1 tests that need that codec (the rest ran in
  ``v1``), when the SDK has it (zstd: with the ``zstandard`` package installed).

Tests run in parallel (``--concurrency``), each with its own SDK client and its own part of
the mock (the harness's ``X-Test-Id`` partitions), so the run takes about as long as its
longest test (the contracts wait up to 15 s for retries), not their sum.

Prints one line per test and the totals; exits 1 on any failure but the two known-stale
tests, which PostHog's own SDK fails as well (``STALE``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HARNESS = ROOT.parent / "shared" / "vendor" / "posthog-sdk-test-harness"

#: Tests whose expectation is out of date: PostHog's own Python SDK fails them too.
STALE = {
    # Both SDKs ask /flags/?v=4; the contract still expects v=2.
    "feature_flags": {"request_payload.flags_request_uses_v2_query_param",
                      # Server SDKs default GeoIP off (the server's IP is not the user's).
                      "request_payload.disable_geoip_omitted_defaults_to_false"},
}  # fmt: skip

ADAPTERS = {"posthog-otel": "tests.harness.adapter", "posthog": "tests.harness.posthog_adapter"}
TEST_TIMEOUT = 120.0  # seconds; the longest contract waits 15 s


@dataclass
class Profile:
    name: str
    arguments: List[str]
    suites: List[str]
    only_requiring: Optional[str] = None  # run only the tests whose `requires` names this
    skip_reason: str = ""


@dataclass
class Outcome:
    profile: str
    suite: str
    test: str
    passed: bool
    duration_ms: int
    message: str = ""

    @property
    def stale(self) -> bool:
        return self.test in STALE.get(self.suite, ())


def profiles(sdk: str) -> List[Profile]:
    zstd = importlib.util.find_spec("zstandard") is not None or (sdk == "posthog-otel" and sys.version_info >= (3, 14))
    return [
        Profile("batch", ["--capture-mode", "v0"], ["capture", "feature_flags", "capture_ai"]),
        Profile("v1", ["--capture-mode", "v1", "--compression", "gzip"], ["capture_v1"]),
        Profile("v1-deflate", ["--capture-mode", "v1", "--compression", "deflate"], ["capture_v1"], "encoding_deflate"),
        Profile("v1-zstd", ["--capture-mode", "v1", "--compression", "zstd"], ["capture_v1"], "encoding_zstd",
                "" if zstd else "the zstandard package is not installed"),
    ]  # fmt: skip


# --- the mock PostHog ---------------------------------------------------------------------


class TestIdFromPath:
    """WSGI: ``/t/<test_id>/batch/`` is ``/batch/`` with ``X-Test-Id: <test_id>``.

    The harness partitions its mock by that header; an adapter gives each test's SDK client
    the mock's URL with the prefix as its host (``_server``), since neither SDK can add a
    header through its public API."""

    _PREFIX = re.compile(r"^/t/([A-Za-z0-9_-]+)(/.*)?$")

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: Dict[str, Any], start_response: Any) -> Any:
        found = self._PREFIX.match(environ.get("PATH_INFO", ""))
        if found:
            environ["HTTP_X_TEST_ID"] = found.group(1)
            environ["PATH_INFO"] = found.group(2) or "/"
        return self.app(environ, start_response)


def start_mock() -> Tuple[Any, str, Any]:
    """(the mock's state, its URL, the server): on 127.0.0.1, a port the OS picks."""
    from posthog_test_harness.mock_server import MockServer, MockServerState
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    state = MockServerState()
    server = make_server("127.0.0.1", 0, TestIdFromPath(MockServer(state).app), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, "http://127.0.0.1:%d" % server.server_port, server


# --- the adapters -------------------------------------------------------------------------


class AdapterProcess:
    """An adapter in its own process: its port is the first line it prints; closing its
    stdin stops it (its SDK clients shut down first)."""

    def __init__(self, module: str, arguments: List[str], log_dir: str, name: str) -> None:
        self.log_path = os.path.join(log_dir, name + ".log")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *arguments], cwd=str(ROOT),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()  # ends when the process does
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError("adapter %s did not start: %r; its log:\n%s" % (name, line, self.log_tail()))
        self.url = "http://127.0.0.1:%d" % int(line.split()[1])

    def log_tail(self, lines: int = 20) -> str:
        with open(self.log_path, "rb") as log:
            return b"\n".join(log.read().splitlines()[-lines:]).decode(errors="replace")

    def stop(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


# --- running ------------------------------------------------------------------------------


async def run_profile(profile: Profile, adapter_url: str, state: Any, mock_url: str, contract: Any,
                      gate: asyncio.Semaphore) -> List[Outcome]:  # fmt: skip
    from posthog_test_harness.sdk_adapter import SDKAdapterClient
    from posthog_test_harness.tests import TestContext
    from posthog_test_harness.tests.suites import ContractTestSuite

    adapter = SDKAdapterClient(adapter_url)
    health = await adapter.wait_for_health(timeout_seconds=30)

    async def one(suite: Any, name: str, definition: Dict[str, Any]) -> Outcome:
        ctx = TestContext(sdk_adapter=adapter, mock_server=state, mock_server_url=mock_url,
                          test_id="t-%s" % uuid.uuid4().hex)  # fmt: skip
        async with gate:
            try:
                result = await asyncio.wait_for(suite.run_single_test(name, definition, ctx), TEST_TIMEOUT)
                outcome = Outcome(
                    profile.name, suite.name, name, result.passed, result.duration_ms, result.message or ""
                )
            except asyncio.TimeoutError:
                outcome = Outcome(profile.name, suite.name, name, False, int(TEST_TIMEOUT * 1000), "timed out")
            try:  # free the test's SDK client and its part of the mock
                await ctx.sdk_adapter.reset()
                ctx.mock_server.reset()
            except Exception:
                pass
        return outcome

    jobs = []
    for suite_name in profile.suites:
        suite = ContractTestSuite(suite_name, contract)
        for name, definition in suite.collect_tests("server", health.capabilities):
            if profile.only_requiring and profile.only_requiring not in _requires(definition):
                continue
            jobs.append(one(suite, name, definition))
    return list(await asyncio.gather(*jobs))


def _requires(definition: Dict[str, Any]) -> List[str]:
    requires = definition.get("requires") or []
    return [requires] if isinstance(requires, str) else list(requires)


async def run_all(sdk: str, selected: List[Profile], mock: Tuple[Any, str, Any], concurrency: int,
                  log_dir: str) -> List[Outcome]:  # fmt: skip
    from posthog_test_harness.contract import ContractExecutor

    state, mock_url, _ = mock
    contract = ContractExecutor(str(HARNESS / "CONTRACT.yaml"))
    gate = asyncio.Semaphore(concurrency)
    adapters: List[AdapterProcess] = []
    try:
        for profile in selected:
            adapters.append(AdapterProcess(ADAPTERS[sdk], profile.arguments, log_dir, profile.name))
        results = await asyncio.gather(
            *(run_profile(p, a.url, state, mock_url, contract, gate) for p, a in zip(selected, adapters))
        )
    finally:
        for adapter in adapters:
            adapter.stop()
    return [outcome for outcomes in results for outcome in outcomes]


def report(sdk: str, outcomes: List[Outcome], skipped: List[Profile], seconds: float, complete: bool) -> int:
    """Print the results; the exit status (1 on any failure but the stale ones)."""
    for outcome in sorted(outcomes, key=lambda o: (o.profile, o.suite, o.test)):
        word = "pass" if outcome.passed else ("STALE" if outcome.stale else "FAIL")
        print(
            "  %-5s %-10s %-13s %s (%d ms)" % (word, outcome.profile, outcome.suite, outcome.test, outcome.duration_ms)
        )
        if not outcome.passed:
            print("          %s" % outcome.message.replace("\n", "\n          ")[:600])
    for profile in skipped:
        print("  skipped profile %s: %s" % (profile.name, profile.skip_reason))
    by_suite: Dict[Tuple[str, str], List[Outcome]] = {}
    for outcome in outcomes:
        by_suite.setdefault((outcome.profile, outcome.suite), []).append(outcome)
    print()
    for (name, suite), group in sorted(by_suite.items()):
        print("  %-10s %-13s %d/%d" % (name, suite, sum(o.passed for o in group), len(group)))
    passed = sum(o.passed for o in outcomes)
    stale = [o for o in outcomes if not o.passed and o.stale]
    failed = [o for o in outcomes if not o.passed and not o.stale]
    print("%s: %d of %d selected tests passed in %.0f s; %d stale (failed by PostHog's SDK too), %d other failure(s)"
          % (sdk, passed, len(outcomes), seconds, len(stale), len(failed)))  # fmt: skip
    if failed:
        return 1
    claim = readme_claim() if sdk == "posthog-otel" and complete else None
    if claim is not None and claim != (passed, len(outcomes)):
        print("README.md says %d of %d: change it to %d of %d" % (*claim, passed, len(outcomes)))
        return 1
    return 0


def readme_claim() -> Optional[Tuple[int, int]]:
    """README's "**N of M** selected tests pass", which a full run keeps true."""
    found = re.search(r"\*\*(\d+) of (\d+)\*\*\s+selected\s+tests\s+pass", (ROOT / "README.md").read_text())
    return (int(found.group(1)), int(found.group(2))) if found else None


def main(argv: Optional[List[str]] = None) -> int:
    global HARNESS
    parser = argparse.ArgumentParser(description="PostHog's SDK compliance harness, against posthog-otel or posthog")
    parser.add_argument("--sdk", choices=sorted(ADAPTERS), default="posthog-otel")
    parser.add_argument("--harness", type=Path, default=DEFAULT_HARNESS)
    parser.add_argument("--profile", action="append", help="run only this profile (repeatable)")
    parser.add_argument("--concurrency", type=int, default=64, help="tests at a time, over all profiles")
    arguments = parser.parse_args(argv)
    HARNESS = arguments.harness.resolve()
    if not (HARNESS / "CONTRACT.yaml").is_file():
        print("no harness at %s: skipped" % HARNESS)
        return 0
    if sys.version_info < (3, 10):
        print("PostHog's harness needs Python >= 3.10 (this is %d.%d): skipped" % sys.version_info[:2])
        return 0
    missing = [m for m in ("flask", "aiohttp", "click", "yaml") if importlib.util.find_spec(m) is None]
    if missing:
        print("the harness needs %s: pip install flask aiohttp click pyyaml (or -e '.[dev]')" % ", ".join(missing))
        return 2
    sys.path.insert(0, str(HARNESS / "src"))
    chosen = [p for p in profiles(arguments.sdk) if not arguments.profile or p.name in arguments.profile]
    selected = [p for p in chosen if not p.skip_reason]
    started = time.monotonic()
    mock = start_mock()
    print("PostHog's SDK compliance harness (%s) against %s; mock PostHog at %s" % (HARNESS, arguments.sdk, mock[1]))
    with tempfile.TemporaryDirectory(prefix="posthog-harness-") as log_dir:
        try:
            outcomes = asyncio.run(run_all(arguments.sdk, selected, mock, arguments.concurrency, log_dir))
        finally:
            mock[2].shutdown()
    skipped = [p for p in chosen if p.skip_reason]
    complete = not arguments.profile and not skipped  # every profile ran: README's numbers must hold
    return report(arguments.sdk, outcomes, skipped, time.monotonic() - started, complete)


HARNESS = DEFAULT_HARNESS

if __name__ == "__main__":
    sys.exit(main())
