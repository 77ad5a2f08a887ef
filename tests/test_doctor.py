"""`posthog-otel doctor`: each check finds its problem and names the fix."""

from __future__ import annotations

import io
import pathlib
import subprocess
import sys

import pytest
from opentelemetry import _logs

import posthog_otel
from posthog_otel._doctor import OK, PROBLEM, WARN, _entry_point, diagnose, report

from .conftest import API_KEY
from .support import Fault, child_env, free_port

BIN = pathlib.Path(sys.executable).parent


def by_topic(findings, topic):
    return [f for f in findings if f.topic == topic]


def test_missing_key_is_a_problem_with_a_fix():
    (finding,) = by_topic(diagnose({}, check_network=False), "API key")
    assert finding.level == PROBLEM and "POSTHOG_API_KEY" in finding.fix


def test_personal_key_is_recognised_and_never_printed():
    key = "phx_personal0123456789abcdefghijklmnop"
    (finding,) = by_topic(diagnose({"POSTHOG_API_KEY": key}, check_network=False), "API key")
    assert finding.level == PROBLEM and "personal" in finding.message and key not in finding.message


def test_implausible_key_is_a_warning():
    (finding,) = by_topic(diagnose({"POSTHOG_API_KEY": "abc"}, check_network=False), "API key")
    assert finding.level == WARN


def test_good_key_is_ok_and_redacted():
    (finding,) = by_topic(diagnose({"POSTHOG_API_KEY": API_KEY}, check_network=False), "API key")
    assert finding.level == OK and API_KEY not in finding.message


def test_unreachable_host_is_a_problem():
    environ = {"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": "http://127.0.0.1:%d" % free_port()}
    (finding,) = by_topic(diagnose(environ), "Reachable")
    assert finding.level == PROBLEM and "cannot reach" in finding.message


def test_reachable_host_is_ok(server):
    (finding,) = by_topic(diagnose({"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": server.url}), "Reachable")
    assert finding.level == OK


def test_invalid_host_is_a_problem():
    (finding,) = by_topic(diagnose({"POSTHOG_HOST": "not a url"}, check_network=False), "Host")
    assert finding.level == PROBLEM


def test_no_provider_is_a_warning_and_configure_fixes_it(server, provider, monkeypatch):
    (before,) = by_topic(diagnose({}, check_network=False), "Provider")
    assert before.level == WARN and "configure()" in before.fix
    monkeypatch.setattr(_logs, "get_logger_provider", lambda: provider)  # as if it were the global one
    (without,) = by_topic(diagnose({}, check_network=False), "Provider")
    assert without.level == PROBLEM and "no PostHog exporter" in without.message
    posthog_otel.configure(api_key=API_KEY, host=server.url, logger_provider=provider)
    (after,) = by_topic(diagnose({}, check_network=False), "Provider")
    assert after.level == OK


def test_distro_defaults_to_grpc_exporters_that_are_missing():
    pytest.importorskip("opentelemetry.distro")
    findings = diagnose({"OTEL_LOGS_EXPORTER": "posthog"}, check_network=False)
    problems = [f.message for f in by_topic(findings, "Auto-config") if f.level == PROBLEM]
    assert any(m.startswith("OTEL_TRACES_EXPORTER defaults to otlp") for m in problems)
    assert any(m.startswith("OTEL_METRICS_EXPORTER defaults to otlp") for m in problems)
    fixed = diagnose(
        {"OTEL_LOGS_EXPORTER": "posthog", "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"},
        check_network=False,
    )
    assert [f.level for f in by_topic(fixed, "Auto-config")] == [OK]


def test_logs_exporter_without_posthog_is_a_warning():
    findings = diagnose(
        {"OTEL_LOGS_EXPORTER": "console", "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"},
        check_network=False,
    )
    (finding,) = by_topic(findings, "Auto-config")
    assert finding.level == WARN and "OTEL_LOGS_EXPORTER=posthog" in finding.fix


def test_sdk_disabled_is_a_problem():
    (finding,) = by_topic(diagnose({"OTEL_SDK_DISABLED": "true"}, check_network=False), "SDK")
    assert finding.level == PROBLEM


def test_report_prints_fixes_and_exit_status():
    out = io.StringIO()
    assert report(diagnose({}, check_network=False), out) == 1
    assert "fix: export POSTHOG_API_KEY" in out.getvalue()
    assert "problem(s)" in out.getvalue()


def test_spool_backlog_is_reported(tmp_path):
    from posthog_otel import Settings
    from posthog_otel._delivery.encoding import EncodedBatch
    from posthog_otel._delivery.spool import DiskSpool, spool_directory

    environ = {"POSTHOG_API_KEY": API_KEY, "POSTHOG_OTEL_SPOOL_DIR": str(tmp_path)}
    (empty,) = by_topic(diagnose(environ, check_network=False), "Spool")
    assert empty.level == OK
    directory = spool_directory(Settings.resolve(environ=environ))
    DiskSpool(directory, 1 << 30, 3600).append(
        EncodedBatch.encode([{"event": "e", "uuid": "u", "distinct_id": "d"}])[0]
    )
    (waiting,) = by_topic(diagnose(environ, check_network=False), "Spool")
    assert waiting.level == WARN and "1 batch(es)" in waiting.message


# --- judged against how the process is configured: no false failures ---------------------------


def test_a_correct_in_code_set_up_has_no_failure(server, provider):
    """configure(api_key=..., host=...) in code, nothing in the environment, the distro installed."""
    posthog_otel.configure(api_key=API_KEY, host=server.url, logger_provider=provider)
    out = io.StringIO()
    assert posthog_otel.doctor(out) == 0, out.getvalue()
    text = out.getvalue()
    assert "FAIL" not in text and "0 problem(s)" in text
    assert "the installed exporter's API key is set" in text and "sending to %s" % server.url in text


def test_the_installed_exporter_wins_over_the_environment(server, provider):
    posthog_otel.configure(api_key=API_KEY, host=server.url, logger_provider=provider)
    findings = diagnose(
        {"POSTHOG_API_KEY": "phx_personal0123456789abcdefghijkl", "POSTHOG_HOST": "nope"}, check_network=False
    )
    assert [f.level for f in by_topic(findings, "API key") + by_topic(findings, "Host")] == [OK, OK]


@pytest.mark.parametrize("host", [None, "http://127.0.0.1:8010"])
def test_the_readme_key_for_the_local_server_is_not_flagged(host):
    environ = {"POSTHOG_API_KEY": "phc_anything", **({"POSTHOG_HOST": host} if host else {})}
    (finding,) = by_topic(diagnose(environ, check_network=False), "API key")
    assert finding.level == OK


def test_any_key_is_fine_for_a_local_server():
    environ = {"POSTHOG_API_KEY": "dev", "POSTHOG_HOST": "http://localhost:8010"}
    (finding,) = by_topic(diagnose(environ, check_network=False), "API key")
    assert finding.level == OK


def test_without_opentelemetry_instrument_variables_the_traps_are_not_failures():
    pytest.importorskip("opentelemetry.distro")  # the distro's defaults are what made these fail
    findings = diagnose({"POSTHOG_API_KEY": API_KEY}, check_network=False)
    (finding,) = by_topic(findings, "Auto-config")
    assert finding.level == OK and "posthog_otel.configure()" in finding.message


ENVIRONMENTS = [
    {},
    {"OTEL_LOGS_EXPORTER": "posthog"},
    {"OTEL_LOGS_EXPORTER": "otlp,posthog"},
    {"OTEL_LOGS_EXPORTER": "otlp,posthog", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
    {"OTEL_LOGS_EXPORTER": "otlp"},
    {"OTEL_TRACES_EXPORTER": "otlp"},
]


@pytest.mark.parametrize("environ", ENVIRONMENTS)
def test_no_fix_switches_posthog_off(environ):
    fixes = [f.fix for f in diagnose(environ, check_network=False)]
    assert not any("OTEL_LOGS_EXPORTER=none" in fix for fix in fixes)


def test_otlp_beside_posthog_needs_its_exporter_package_and_protocol():
    findings = diagnose(
        {"OTEL_LOGS_EXPORTER": "otlp,posthog", "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
         "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, check_network=False,
    )  # fmt: skip
    if _entry_point("opentelemetry_logs_exporter", "otlp_proto_http"):
        pytest.skip("the OTLP/HTTP exporter is installed here")
    (problem,) = [f for f in by_topic(findings, "Auto-config") if f.level == PROBLEM]
    assert "otlp_proto_http" in problem.message and "opentelemetry-exporter-otlp-proto-http" in problem.fix
    assert "OTEL_LOGS_EXPORTER=posthog" in problem.fix
    unsupported = diagnose(
        {"OTEL_LOGS_EXPORTER": "otlp,posthog", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, check_network=False
    )
    assert any("http/json" in f.message and f.level == PROBLEM for f in unsupported)


def instrument_doctor(**env):
    instrument = BIN / "opentelemetry-instrument"
    if not instrument.exists():
        pytest.skip("opentelemetry-instrumentation is not installed")
    return subprocess.run(
        [str(instrument), str(BIN / "posthog-otel"), "doctor", "--offline"],
        env=child_env(**env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_under_opentelemetry_instrument_it_reads_what_was_installed(server):
    result = instrument_doctor(
        OTEL_LOGS_EXPORTER="posthog", OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none",
        POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the PostHog exporter is installed (by the global LoggerProvider)" in result.stdout
    assert "the installed exporter's API key" in result.stdout


def test_under_opentelemetry_instrument_a_failed_set_up_is_a_failure_with_fixes(server):
    pytest.importorskip("opentelemetry.distro")
    if _entry_point("opentelemetry_traces_exporter", "otlp_proto_grpc"):
        pytest.skip("the OTLP/gRPC exporters are installed here")
    result = instrument_doctor(POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url)  # no OTEL_* at all
    assert result.returncode == 1
    assert "opentelemetry-instrument installed no LoggerProvider: its set-up failed" in result.stdout
    assert "OTEL_TRACES_EXPORTER" in result.stdout and "OTEL_LOGS_EXPORTER=none" not in result.stdout
    assert "export OTEL_LOGS_EXPORTER=posthog" in result.stdout


# --- proven, not assumed ------------------------------------------------------------------------


def test_a_key_posthog_refuses_is_a_problem_not_ok(server):
    server.otherwise = lambda: Fault(401)
    findings = diagnose({"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": server.url})
    (key,) = by_topic(findings, "API key")
    assert key.level == PROBLEM and "refused" in key.message and "POSTHOG_API_KEY" in key.fix
    assert API_KEY not in key.message
    (request,) = server.requests  # the check itself: a flag read, as the SDK asks it; no event
    assert request.path.startswith("/flags") and request.payload["api_key"] == API_KEY


def test_a_key_posthog_accepts_is_ok_because_it_said_so(server):
    findings = diagnose({"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": server.url})
    (key,) = by_topic(findings, "API key")
    assert key.level == OK and "accepted" in key.message
    assert server.events == []  # nothing was captured


def test_any_server_that_answers_is_not_taken_for_posthog(tmp_path):
    """An HTTP server that is not PostHog (a wrong port, a web app) answered "Reachable: ok"."""
    import http.server
    import threading

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:%d" % httpd.server_address[1]
        (reached,) = by_topic(diagnose({"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": url}), "Reachable")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert reached.level == PROBLEM and "not as PostHog" in reached.message and "POSTHOG_HOST" in reached.fix


class _PostHogStandIn:
    """A loopback PostHog for the key checks: /flags accepts the project key, /flags/definitions
    answers the personal key with ``status`` (the local PostHog takes any bearer token)."""

    def __init__(self, status):
        import http.server
        import json
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._answer(200, {"flags": {}, "errorsWhileComputingFlags": False})

            def do_GET(self):  # noqa: N802
                self._answer(status, {"flags": [], "group_type_mapping": {}, "cohorts": {}} if status == 200 else {})

            def _answer(self, code, document):
                body = json.dumps(document).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("status, level, said", [(200, OK, "accepted"), (401, PROBLEM, "refused"),
                                                 (403, PROBLEM, "feature flags")])  # fmt: skip
def test_the_personal_key_is_tried_where_local_evaluation_uses_it(status, level, said):
    stand_in = _PostHogStandIn(status)
    personal = "phx_personal0123456789abcdefghijklmnop"
    try:
        environ = {"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": stand_in.url, "POSTHOG_PERSONAL_API_KEY": personal}
        (finding,) = by_topic(diagnose(environ), "Personal key")
    finally:
        stand_in.close()
    assert finding.level == level and said in finding.message and personal not in finding.message


def test_the_command_speaks_about_the_application_not_its_own_process():
    """Run outside opentelemetry-instrument, its own process has no LoggerProvider, nor should it:
    that is no warning about the application."""
    result = subprocess.run([str(BIN / "posthog-otel"), "doctor", "--offline"], env=child_env(POSTHOG_API_KEY=API_KEY),
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    (line,) = [text for text in result.stdout.splitlines() if " Provider " in text]
    assert line.startswith("  ok") and "posthog_otel.doctor()" in line
    assert "no OpenTelemetry LoggerProvider" not in result.stdout
