"""Flags use the exporter's transport: a ``transport=`` an application passes (a proxy, mTLS)
carries ``/flags``, flag definitions and remote config, not only ``/batch/``.

``RecordingTransport`` is a real transport: it notes each request and forwards it to the
package's ``HttpTransport``, which reaches ``FlagServer`` on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
from typing import List, Mapping, Tuple

import pytest

import posthog_otel
from posthog_otel._delivery.http import HttpTransport, Response

from .conftest import API_KEY
from .test_flags import DEFINITIONS, PERSONAL_KEY, FlagServer, fresh_flag_service  # noqa: F401 (autouse)


class RecordingTransport:
    """Forwards to a real ``HttpTransport``, noting (method, path) of every request."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, str]] = []
        self._http = HttpTransport()

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
        self.calls.append(("POST", _path(url)))
        return self._http.post(url, body, headers, timeout)

    def get(self, url: str, headers: Mapping[str, str], timeout: float) -> Response:
        self.calls.append(("GET", _path(url)))
        return self._http.get(url, headers, timeout)

    def close(self) -> None:
        self._http.close()

    def paths(self, method: str) -> List[str]:
        return [path.split("?")[0] for m, path in self.calls if m == method]


class PostOnlyTransport(RecordingTransport):
    """A transport written for events only (``post`` and ``close``, as before flags used it)."""

    get = None  # type: ignore[assignment]


class RaisingTransport(RecordingTransport):
    """An application's transport that fails with its own exception on flag requests."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
        if "/flags" in url:
            raise RuntimeError("proxy down for %s" % url)
        return super().post(url, body, headers, timeout)


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


@pytest.fixture
def flag_server():
    server = FlagServer(json.loads(json.dumps(DEFINITIONS)))
    yield server
    server.close()


def test_configure_transport_carries_definitions_and_flags(flag_server, provider):
    transport = RecordingTransport()
    posthog_otel.configure(api_key=API_KEY, host=flag_server.url, personal_api_key=PERSONAL_KEY,
                           transport=transport, logger_provider=provider, schedule_delay_millis=50)  # fmt: skip
    assert posthog_otel.load_feature_flags()
    assert posthog_otel.get_feature_flag("beta", "u1") == "from-server"  # undecidable here: asked of /flags
    assert transport.paths("GET") == ["/flags/definitions"]
    assert transport.paths("POST") == ["/flags/"]
    assert len(flag_server.gets()) == 1 and len(flag_server.flag_posts()) == 1  # and nothing went around it
    posthog_otel.capture("u1", "seen")
    assert posthog_otel.flush(10)
    assert "/batch/" in transport.paths("POST")


def test_a_clients_transport_carries_its_flags(flag_server):
    transport = RecordingTransport()
    client = posthog_otel.Posthog(API_KEY, host=flag_server.url, personal_api_key=PERSONAL_KEY, transport=transport)
    try:
        assert client.load_feature_flags()
        assert client.get_feature_flag("beta", "u1") == "from-server"
        client.get_remote_config_payload("beta")  # FlagServer answers any GET; the request is what counts
    finally:
        client.shutdown()
    assert transport.paths("GET")[:1] == ["/flags/definitions"]
    assert "/api/projects/@current/feature_flags/beta/remote_config" in transport.paths("GET")
    assert "/flags/" in transport.paths("POST")


def test_a_transport_without_get_still_asks_flags_and_says_why_definitions_fail(flag_server, provider, caplog):
    transport = PostOnlyTransport()
    posthog_otel.configure(api_key=API_KEY, host=flag_server.url, personal_api_key=PERSONAL_KEY,
                           transport=transport, logger_provider=provider)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="posthog_otel"):
        assert not posthog_otel.load_feature_flags()
        assert posthog_otel.get_feature_flag("beta", "u1", person_properties={"plan": "enterprise"}) == "from-server"
    assert flag_server.gets() == []  # never around the transport
    assert transport.paths("POST") == ["/flags/"]
    assert any("has no get(" in r.getMessage() for r in caplog.records)


def test_a_transport_raising_its_own_error_is_no_answer_for_flags(flag_server, provider, caplog):
    transport = RaisingTransport()
    posthog_otel.configure(api_key=API_KEY, host=flag_server.url, transport=transport, logger_provider=provider)
    with caplog.at_level(logging.WARNING, logger="posthog_otel"):
        assert posthog_otel.get_feature_flag("beta", "u1") is None
        result = posthog_otel.get_feature_flag_result("beta", "u1")
    assert result is None or result.value is None
    assert flag_server.flag_posts() == []
    messages = [r.getMessage() for r in caplog.records]
    assert any("transport raised RuntimeError" in m for m in messages), messages
    assert not any("proxy down" in m for m in messages)  # its message (it may name the URL, the key) is not logged
