"""Polling flag definitions: ETag and 304, a refused key, a used-up quota, failures, fork."""

from __future__ import annotations

import json
import logging
import os
import time

import pytest

import posthog_otel
from posthog_otel import Settings
from posthog_otel._flags import service as flag_service
from posthog_otel._flags.poller import DefinitionsPoller

from .conftest import API_KEY
from .test_flags import DEFINITIONS, PERSONAL_KEY, FlagServer, flag, fresh_flag_service  # noqa: F401 (fixture)


@pytest.fixture
def flag_server():
    server = FlagServer(json.loads(json.dumps(DEFINITIONS)))
    yield server
    server.close()


@pytest.fixture
def poller(flag_server):
    polling = DefinitionsPoller(flag_server.url, API_KEY, PERSONAL_KEY, interval=3600)
    yield polling
    polling.stop()


def keys(poller: DefinitionsPoller):
    return None if poller.definitions is None else [f.key for f in poller.definitions.flags]


def test_etag_is_sent_back_and_304_keeps_what_is_loaded(poller, flag_server, caplog):
    poller.poll()
    loaded = poller.definitions
    assert keys(poller) == ["beta", "checkout", "company-tools"]
    poller.poll()
    poller.poll()  # the ETag is kept across a 304: asked again, still nothing to read
    first, second, third = flag_server.gets()
    assert "If-None-Match" not in first[2]
    assert second[2]["If-None-Match"] == third[2]["If-None-Match"] == flag_server.etag
    assert poller.definitions is loaded  # 304: nothing was re-read
    assert "could not load" not in caplog.text  # and nothing went wrong


def test_changed_definitions_replace_the_old_ones(poller, flag_server):
    poller.poll()
    flag_server.definitions = {"flags": [flag("new", {"properties": []})], "group_type_mapping": {}, "cohorts": {}}
    poller.poll()
    assert keys(poller) == ["new"]


@pytest.mark.parametrize(
    "status,body",
    [(500, "{}"), (503, "down"), (200, "not json"), (200, '{"flags": "nope"}'), (200, '{"quotaLimited": ["feature_flags"], "flags": []}'),
     (404, "{}")],
    ids=["500", "503", "not-json", "wrong-shape", "quota-limited-200", "404"],
)  # fmt: skip
def test_a_failed_poll_keeps_the_last_good_definitions(poller, flag_server, status, body, caplog):
    poller.poll()
    loaded = poller.definitions
    flag_server.definition_faults.append((status, body))
    poller.poll()
    assert poller.definitions is loaded
    assert "could not load flag definitions" in caplog.text and "keeping the definitions loaded earlier" in caplog.text


def test_unreachable_host_keeps_the_last_definitions(poller, flag_server):
    poller.poll()
    loaded = poller.definitions
    flag_server.close()
    poller.poll()
    assert poller.definitions is loaded


def test_401_clears_with_one_loud_redacted_error(poller, flag_server, caplog):
    poller.poll()
    flag_server.definition_faults.extend([(401, '{"detail": "bad key"}')] * 3)
    for _ in range(3):
        poller.poll()
    assert poller.definitions is not None and poller.definitions.empty
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "refused the personal API key phx_...rs" in errors[0].getMessage()
    assert PERSONAL_KEY not in caplog.text and API_KEY not in caplog.text
    poller.poll()  # the key is accepted again: definitions come back...
    assert keys(poller) == ["beta", "checkout", "company-tools"]
    flag_server.definition_faults.append((401, "{}"))
    poller.poll()  # ...and a new refusal is said again
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 2


def test_402_clears_as_posthogs_sdk_does(poller, flag_server, caplog):
    poller.poll()
    flag_server.definition_faults.append((402, "{}"))
    poller.poll()
    assert poller.definitions.empty
    assert "quota is used up" in caplog.text


def test_after_401_flags_are_asked_of_posthog(flag_server, provider):
    flag_server.definition_faults.append((401, "{}"))
    posthog_otel.configure(
        api_key=API_KEY, host=flag_server.url, personal_api_key=PERSONAL_KEY, logger_provider=provider
    )
    assert not posthog_otel.load_feature_flags()
    assert posthog_otel.get_feature_flag("checkout", "u1", send_feature_flag_events=False) == "from-server"
    assert posthog_otel.get_feature_flag("checkout", "u1", only_evaluate_locally=True) is None


def test_the_poller_polls_at_its_interval(flag_server, provider):
    posthog_otel.configure(api_key=API_KEY, host=flag_server.url, personal_api_key=PERSONAL_KEY,
                           poll_interval=0.05, logger_provider=provider)  # fmt: skip
    posthog_otel.load_feature_flags()
    assert flag_server.wait_for(lambda: len(flag_server.gets()) >= 4)
    assert all(get[2].get("If-None-Match") == flag_server.etag for get in flag_server.gets()[2:])


def test_a_new_configuration_stops_the_old_poller(flag_server, provider):
    posthog_otel.configure(api_key=API_KEY, host=flag_server.url, personal_api_key=PERSONAL_KEY,
                           poll_interval=3600, logger_provider=provider)  # fmt: skip
    posthog_otel.load_feature_flags()
    old = flag_service.current_service()
    posthog_otel.configure(api_key=API_KEY, host=flag_server.url, logger_provider=provider)
    assert flag_service.current_service() is not old
    assert old.poller._stop.is_set()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_worker_keeps_answering_and_polling(flag_server, provider):
    posthog_otel.configure(api_key=API_KEY, host=flag_server.url, personal_api_key=PERSONAL_KEY,
                           poll_interval=0.2, logger_provider=provider)  # fmt: skip
    assert posthog_otel.load_feature_flags()
    flag_server.close()  # from now on a GET cannot succeed: the worker must answer from what was loaded
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: answer from what the parent loaded, then poll on its own thread
        code = 1
        try:
            poller = flag_service.current_service().poller
            inherited = poller.polls
            answer = posthog_otel.get_feature_flag(
                "checkout", "u1", only_evaluate_locally=True, send_feature_flag_events=False
            )
            deadline = time.monotonic() + 10
            while poller.polls < inherited + 2 and time.monotonic() < deadline:  # two polls of the worker's own
                time.sleep(0.01)
            still = posthog_otel.get_feature_flag(
                "checkout", "u1", only_evaluate_locally=True, send_feature_flag_events=False
            )
            os.write(write_end, json.dumps([answer, still, poller.polls - inherited]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        answer, still, polls = json.loads(pipe.read() or "[null, null, 0]")
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert answer == "test" and still == "test"  # answered from what the parent loaded, failed polls kept it
    assert polls >= 2  # the worker polls on a thread of its own


def test_keys_are_redacted_in_settings_and_errors(caplog):
    settings = Settings.resolve(
        environ={}, api_key=API_KEY, personal_api_key=PERSONAL_KEY, secret_key="phs_secret0123456789abcdef"
    )
    shown = repr(settings)
    assert PERSONAL_KEY not in shown and "phs_secret0123456789abcdef" not in shown and "phx_...rs" in shown
    with pytest.raises(ValueError) as error:
        Settings.resolve(environ={}, personal_api_key=12345)
    assert "12345" not in str(error.value) and "personal_api_key" in str(error.value)
    Settings.resolve(environ={"POSTHOG_OTEL_POLL_INTERVAL": "soon", "POSTHOG_PERSONAL_API_KEY": " "})
    assert "POSTHOG_OTEL_POLL_INTERVAL" in caplog.text
    assert repr(DefinitionsPoller("http://127.0.0.1:1", API_KEY, PERSONAL_KEY, 30)).count("phx_...rs") == 1


def test_flag_settings_resolve_from_the_environment():
    environ = {
        "POSTHOG_PERSONAL_API_KEY": PERSONAL_KEY,
        "POSTHOG_OTEL_POLL_INTERVAL": "5",
        "POSTHOG_OTEL_LOCAL_EVALUATION": "off",
    }
    settings = Settings.resolve(environ=environ)
    assert (settings.personal_api_key, settings.poll_interval, settings.local_evaluation) == (PERSONAL_KEY, 5.0, False)
    assert Settings.resolve(environ={}).poll_interval == 30.0
