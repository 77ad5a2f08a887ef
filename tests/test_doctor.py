"""`posthog-otel doctor`: each check finds its problem and names the fix."""

from __future__ import annotations

import io

import pytest
from opentelemetry import _logs

import posthog_otel
from posthog_otel._doctor import OK, PROBLEM, WARN, diagnose, report

from .conftest import API_KEY
from .support import free_port


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
    findings = diagnose({"OTEL_LOGS_EXPORTER": "console", "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}, check_network=False)
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
    from posthog_otel._encoding import EncodedBatch
    from posthog_otel._spool import DiskSpool, spool_directory

    environ = {"POSTHOG_API_KEY": API_KEY, "POSTHOG_OTEL_SPOOL_DIR": str(tmp_path)}
    (empty,) = by_topic(diagnose(environ, check_network=False), "Spool")
    assert empty.level == OK
    directory = spool_directory(Settings.resolve(environ=environ))
    DiskSpool(directory, 1 << 30, 3600).append(EncodedBatch.encode([{"event": "e", "uuid": "u", "distinct_id": "d"}])[0])
    (waiting,) = by_topic(diagnose(environ, check_network=False), "Spool")
    assert waiting.level == WARN and "1 batch(es)" in waiting.message
