from __future__ import annotations

import os

import pytest
from opentelemetry.sdk._logs import LoggerProvider

import posthog_otel
from posthog_otel import _config, _emit, _log, _module, _state
from posthog_otel._exceptions import limits

from .support import CaptureServer

API_KEY = "phc_testkey0123456789abcdefghijklmnopqrstuvw"


@pytest.fixture(autouse=True)
def clean_state(monkeypatch, tmp_path_factory):
    """Each test starts with no PostHog/OTel environment, its own spool, fresh counters,
    and raising internals."""
    for name in list(os.environ):
        if name.startswith(("POSTHOG_", "OTEL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("POSTHOG_OTEL_SPOOL_DIR", str(tmp_path_factory.mktemp("spool")))
    monkeypatch.setenv("POSTHOG_OTEL_HANDLE_SIGTERM", "false")
    _log.reset_diagnostics()
    for memory in (limits.calls, limits.records, limits.recent):  # exception rate limits, duplicates
        memory.reset()
    monkeypatch.setattr(_state, "raise_internal_errors", True)
    monkeypatch.setattr(posthog_otel, "api_key", None)
    monkeypatch.setattr(posthog_otel, "host", None)
    yield
    if _state.pipeline is not None:
        _state.pipeline.shutdown()
        _state.pipeline = None
    _emit.emitter.unbind()  # after the shutdown, which would leave it refusing operations
    _module.reset()
    _config.REDIRECT = None
    _forget_global_logger_provider()


def _forget_global_logger_provider():
    """A test that installed a global LoggerProvider (``posthog_otel.api_key = ...`` without one
    makes it) must not leave it to the next: "no provider" is a state tests need. OpenTelemetry's
    API allows one set per process, so its private state is put back (tests only)."""
    from opentelemetry._logs import _internal

    if getattr(_internal, "_LOGGER_PROVIDER", None) is not None and hasattr(_internal, "Once"):
        _internal._LOGGER_PROVIDER = None
        _internal._LOGGER_PROVIDER_SET_ONCE = _internal.Once()


@pytest.fixture
def server():
    capture = CaptureServer()
    yield capture
    capture.close()


@pytest.fixture
def local(tmp_path):
    """The local PostHog (SQLite store and capture server): (server, store)."""
    from posthog_otel._local.server import LocalServer
    from posthog_otel._local.store import Store

    store = Store(tmp_path / "local.sqlite3")
    with LocalServer(store) as running:
        yield running, store
    store.close()


@pytest.fixture
def provider():
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    yield logger_provider
    logger_provider.shutdown()


@pytest.fixture
def pipeline(server, provider):
    """The real thing: SDK LoggerProvider, batch processor, exporter, loopback PostHog."""
    return posthog_otel.configure(api_key=API_KEY, host=server.url, logger_provider=provider, schedule_delay_millis=50)
