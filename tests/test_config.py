"""Settings: argument > environment > default; clear errors; the key never shown."""

from __future__ import annotations

import logging
import pathlib

import pytest

from posthog_otel import PostHogLogExporter, Settings

from .conftest import API_KEY

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_defaults():
    settings = Settings.resolve(environ={})
    assert settings.host == "https://us.i.posthog.com"
    assert settings.api_key is None
    assert settings.gzip is True and settings.disable_geoip is True
    assert settings.timeout == 10.0 and settings.max_attempts == 6


def test_argument_beats_environment_beats_default():
    environ = {"POSTHOG_HOST": "https://env.example.com", "POSTHOG_OTEL_TIMEOUT": "3"}
    settings = Settings.resolve(environ=environ, host="https://arg.example.com")
    assert settings.host == "https://arg.example.com"
    assert settings.timeout == 3.0
    assert settings.max_attempts == 6


def test_project_api_key_is_a_fallback_name():
    assert Settings.resolve(environ={"POSTHOG_PROJECT_API_KEY": "phc_b"}).api_key == "phc_b"
    both = {"POSTHOG_API_KEY": "phc_a", "POSTHOG_PROJECT_API_KEY": "phc_b"}
    assert Settings.resolve(environ=both).api_key == "phc_a"


@pytest.mark.parametrize(
    "given,expected",
    [
        ("https://app.posthog.com", "https://us.i.posthog.com"),
        ("https://us.posthog.com/", "https://us.i.posthog.com"),
        ("https://eu.posthog.com", "https://eu.i.posthog.com"),
        ("https://posthog.internal.example.com/", "https://posthog.internal.example.com"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_app_hosts_map_to_ingestion_hosts(given, expected):
    assert Settings.resolve(environ={}, host=given).host == expected


def test_bad_environment_value_warns_naming_the_variable_and_uses_the_default(caplog):
    environ = {"POSTHOG_OTEL_TIMEOUT": "soon", "POSTHOG_OTEL_GZIP": "maybe"}
    settings = Settings.resolve(environ=environ)
    assert settings.timeout == 10.0 and settings.gzip is True
    for name in ("POSTHOG_OTEL_TIMEOUT", "POSTHOG_OTEL_GZIP"):
        assert name in caplog.text


def test_a_bad_host_in_the_environment_is_an_error_not_another_region():
    """Falling back to the default host would send an EU project's data to the US."""
    with pytest.raises(ValueError, match="POSTHOG_HOST"):
        Settings.resolve(environ={"POSTHOG_HOST": "ftp://x"})


@pytest.mark.parametrize(
    "given,expected",
    [
        ("eu.i.posthog.com", "https://eu.i.posthog.com"),
        ("eu.posthog.com", "https://eu.i.posthog.com"),  # the app host, then its ingestion host
        ("us.i.posthog.com/", "https://us.i.posthog.com"),
        ("posthog.example.com:8443", "https://posthog.example.com:8443"),
        ("localhost:8010", "http://localhost:8010"),  # the local PostHog speaks plain http
        ("127.0.0.1:8010", "http://127.0.0.1:8010"),
    ],
)
def test_a_host_without_a_scheme_keeps_its_region_everywhere(given, expected, caplog):
    """One rule for the argument and the environment: https:// is added (http:// on loopback), said once."""
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    assert Settings.resolve(environ={}, host=given).host == expected
    assert Settings.resolve(environ={"POSTHOG_HOST": given}).host == expected
    assert "has no scheme" in caplog.text and expected.split("://")[0] + "://" in caplog.text


@pytest.mark.parametrize(
    "arguments,named",
    [
        ({"api_key": "phx_personal0123456789abcdef"}, "personal_api_key"),
        ({"api_key": "phs_secret0123456789abcdef"}, "secret_key"),
        ({"api_key": API_KEY, "personal_api_key": API_KEY}, "api_key"),
        ({"api_key": API_KEY, "secret_key": "phc_project0123456789abcdef"}, "api_key"),
    ],
)
def test_swapped_keys_are_refused_naming_both_settings(arguments, named):
    with pytest.raises(ValueError) as error:
        Settings.resolve(environ={}, **arguments)
    message = str(error.value)
    assert named in message and ("POSTHOG_API_KEY" in message)
    assert "0123456789abcdef" not in message  # never the key itself


def test_swapped_keys_in_the_environment_are_refused_too():
    with pytest.raises(ValueError, match="personal_api_key"):
        Settings.resolve(environ={"POSTHOG_API_KEY": "phx_personal0123456789abcdef"})


@pytest.mark.parametrize(
    "arguments,named",
    [({"timeout": -1}, "timeout"), ({"host": "not a url"}, "host"), ({"max_attempts": 0}, "max_attempts")],
)
def test_bad_argument_raises_naming_the_setting(arguments, named):
    with pytest.raises(ValueError, match=named):
        Settings.resolve(environ={}, **arguments)


def test_unknown_setting_is_a_type_error():
    with pytest.raises(TypeError, match="hots"):
        Settings.resolve(environ={}, hots="https://x")


def test_missing_key_is_a_clear_error_naming_the_variable():
    with pytest.raises(ValueError, match="POSTHOG_API_KEY"):
        PostHogLogExporter()


def test_exporter_reads_the_environment(monkeypatch):
    monkeypatch.setenv("POSTHOG_API_KEY", API_KEY)
    monkeypatch.setenv("POSTHOG_HOST", "https://eu.posthog.com")
    exporter = PostHogLogExporter()
    assert exporter.settings.host == "https://eu.i.posthog.com"


def test_the_key_never_appears_in_reprs_or_errors(caplog):
    exporter = PostHogLogExporter(api_key=API_KEY, host="http://127.0.0.1:1")
    assert API_KEY not in repr(exporter)
    assert API_KEY not in repr(exporter.settings)
    assert "phc_...vw" in repr(exporter)
    with pytest.raises(ValueError) as error:
        Settings.resolve(environ={}, api_key=12345)
    assert "12345" not in str(error.value)
    Settings.resolve(environ={"POSTHOG_API_KEY": "   "})
    assert API_KEY not in caplog.text


def test_plain_http_to_a_remote_host_warns(caplog):
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    PostHogLogExporter(api_key=API_KEY, host="http://posthog.example.com")
    assert "unencrypted" in caplog.text
    caplog.clear()
    PostHogLogExporter(api_key=API_KEY, host="http://localhost:8000")
    assert "unencrypted" not in caplog.text


def test_configuration_reference_lists_every_setting():
    text = DOCS.read_text()
    for name, env, _default, _doc in Settings.table():
        assert "`%s`" % name in text
        for variable in env:
            assert variable in text
