"""Configuration the OpenTelemetry way, in fresh processes: no code beyond the emit calls."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from .conftest import API_KEY
from .support import child_env

APPS = pathlib.Path(__file__).resolve().parent / "apps"
BIN = pathlib.Path(sys.executable).parent


def run(args, **env):
    return subprocess.run(args, env=child_env(**env), capture_output=True, text=True, timeout=60)


def instrumented(server, **env):
    """instrumented_app.py under `opentelemetry-instrument`, configured by the environment only."""
    instrument = BIN / "opentelemetry-instrument"
    if not instrument.exists():
        pytest.skip("opentelemetry-instrumentation is not installed")
    return run(
        [str(instrument), sys.executable, str(APPS / "instrumented_app.py")],
        OTEL_LOGS_EXPORTER="posthog",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        POSTHOG_HOST=server.url,
        **env,
    )


def test_opentelemetry_instrument_with_environment_only(server):
    result = instrumented(server, OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true", POSTHOG_API_KEY=API_KEY)
    assert result.returncode == 0, result.stderr
    events = server.events
    assert sorted(e["event"] for e in events) == ["$create_alias", "$groupidentify", "$set", "dashboard_viewed"]
    (captured,) = server.by_event("dashboard_viewed")
    assert captured["distinct_id"] == "user123" and captured["properties"]["source"] == "instrumented"
    assert "no OpenTelemetry LoggerProvider" not in result.stderr


def test_missing_key_under_opentelemetry_instrument_names_the_variable(server):
    result = instrumented(server)
    assert "POSTHOG_API_KEY" in result.stderr
    assert server.requests == []


def test_declarative_configuration_file(server, tmp_path):
    pytest.importorskip("opentelemetry.configuration")
    pytest.importorskip("yaml")
    config = tmp_path / "otel.yaml"
    config.write_text(
        "file_format: '1.0'\n"
        "logger_provider:\n"
        "  processors:\n"
        "    - batch:\n"
        "        exporter:\n"
        "          posthog:\n"
        "            api_key: ${POSTHOG_API_KEY}\n"
        "            host: %s\n"
        "            timeout: 5\n" % server.url
    )
    result = run([sys.executable, str(APPS / "declarative_app.py"), str(config)], POSTHOG_API_KEY=API_KEY)
    assert result.returncode == 0, result.stderr
    (event,) = server.events
    assert event["$set"] == {"via": "config file"} and event["distinct_id"] == "declared"


def test_declarative_configuration_file_under_opentelemetry_instrument(server, tmp_path):
    """docs/configuration.md: OTEL_CONFIG_FILE=otel.yaml opentelemetry-instrument python app.py"""
    pytest.importorskip("opentelemetry.configuration")
    instrument = BIN / "opentelemetry-instrument"
    if not instrument.exists():
        pytest.skip("opentelemetry-instrumentation is not installed")
    config = tmp_path / "otel.yaml"
    config.write_text(
        "file_format: '1.0'\n"
        "logger_provider:\n"
        "  processors:\n"
        "    - batch:\n"
        "        exporter:\n"
        "          posthog:\n"
        "            api_key: ${POSTHOG_API_KEY}\n"
        "            host: %s\n" % server.url
    )
    result = run(
        [str(instrument), sys.executable, str(APPS / "plain_app.py")],
        OTEL_CONFIG_FILE=str(config), OTEL_LOGS_EXPORTER="console", POSTHOG_API_KEY=API_KEY,  # the file wins
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (event,) = server.events
    assert event["$set"] == {"via": "OTEL_CONFIG_FILE"} and event["distinct_id"] == "declared"
