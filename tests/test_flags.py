"""Feature flags through the public calls: local answers, the /flags fallback, events, asyncio.

Everything runs against ``FlagServer``, a real HTTP server on 127.0.0.1 that serves
definitions in PostHog's format (with ETags), answers ``/flags`` and records events.
The comparisons with PostHog's own SDK are in ``test_flags_oracle.py``.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import pytest

import posthog_otel
from posthog_otel._flags import service as flag_service

from .conftest import API_KEY

PERSONAL_KEY = "phx_personal0123456789abcdefghijklmnopqrs"


#: Answer for /flags: every flag asked (or every flag defined) comes back "from-server".
def server_answer(keys: List[str]) -> Dict[str, Any]:
    return {
        "flags": {
            key: {"key": key, "enabled": True, "variant": "from-server", "reason": {"code": "condition_match",
                  "description": "Matched on the server"}, "metadata": {"id": 99, "version": 7, "payload": '"remote"'}}
            for key in keys
        },
        "errorsWhileComputingFlags": False,
        "requestId": "request-1",
    }  # fmt: skip


class FlagServer:
    """Loopback PostHog for flags: ``GET /flags/definitions``, ``POST /flags/``, ``POST /batch/``."""

    def __init__(self, definitions: Optional[Dict[str, Any]] = None) -> None:
        self.definitions: Dict[str, Any] = definitions or {"flags": [], "group_type_mapping": {}, "cohorts": {}}
        self.answer: Callable[[Dict[str, Any]], Tuple[int, Any]] = self._server_answer
        self.definition_faults: Deque[Tuple[int, str]] = deque()  # (status, body) for the next GETs
        self.requests: List[Tuple[str, str, Dict[str, str], Any]] = []  # (method, path, headers, body)
        self._changed = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # the answer's head and body leave at once, not 40 ms apart

            def do_GET(self) -> None:  # noqa: N802
                server._record(self, "GET", None)
                status, body, headers = server._definitions_reply(self.headers.get("If-None-Match"))
                self._send(status, body, headers)

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                payload = json.loads(raw) if raw else None
                server._record(self, "POST", payload)
                if self.path.startswith("/flags"):
                    status, body = server.answer(payload)
                    self._send(status, json.dumps(body))
                else:
                    self._send(200, '{"status": 1}')

            def _send(self, status: int, body: str, headers: Optional[Dict[str, str]] = None) -> None:
                data = body.encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True)
        self._thread.start()

    @property
    def etag(self) -> str:
        return '"%s"' % hashlib.sha256(json.dumps(self.definitions, sort_keys=True).encode()).hexdigest()[:16]

    def _server_answer(self, payload: Dict[str, Any]) -> Tuple[int, Any]:
        keys = payload.get("flag_keys_to_evaluate") or [f["key"] for f in self.definitions.get("flags", [])]
        return 200, server_answer(keys)

    def _definitions_reply(self, if_none_match: Optional[str]) -> Tuple[int, str, Dict[str, str]]:
        if self.definition_faults:
            status, body = self.definition_faults.popleft()
            return status, body, {}
        if if_none_match == self.etag:
            return 304, "", {"ETag": self.etag}
        return 200, json.dumps(self.definitions), {"ETag": self.etag}

    def _record(self, handler: BaseHTTPRequestHandler, method: str, body: Any) -> None:
        with self._changed:
            self.requests.append((method, handler.path, dict(handler.headers), body))
            self._changed.notify_all()

    def gets(self) -> List[Tuple[str, str, Dict[str, str], Any]]:
        return [r for r in self.requests if r[0] == "GET"]

    def flag_posts(self) -> List[Any]:
        return [r[3] for r in self.requests if r[0] == "POST" and r[1].startswith("/flags")]

    def events(self, name: Optional[str] = None) -> List[Dict[str, Any]]:
        found = [e for r in self.requests if r[0] == "POST" and r[1].startswith("/batch") for e in r[3]["batch"]]
        return [e for e in found if name is None or e["event"] == name]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def flag_server():
    server = FlagServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fresh_flag_service():
    flag_service.reset()
    yield
    flag_service.reset()


def flag(key: str, *conditions: Dict[str, Any], **fields: Any) -> Dict[str, Any]:
    """A flag definition in PostHog's format; ``fields`` go into ``filters`` (or the flag for id/active)."""
    top = {
        k: fields.pop(k)
        for k in ("id", "active", "ensure_experience_continuity", "bucketing_identifier")
        if k in fields
    }
    return {"id": 1, "key": key, "active": True, **top, "filters": {"groups": list(conditions), **fields}}


def prop(key: str, operator: str, value: Any, **extra: Any) -> Dict[str, Any]:
    return {"key": key, "operator": operator, "value": value, "type": "person", **extra}


DEFINITIONS = {
    "flags": [
        flag(
            "beta",
            {"properties": [prop("plan", "exact", ["enterprise"])], "rollout_percentage": 100},
            payloads={"true": '{"theme": "dark"}'},
        ),  # fmt: skip
        flag(
            "checkout",
            {"properties": [], "rollout_percentage": 100},
            multivariate={
                "variants": [{"key": "control", "rollout_percentage": 0}, {"key": "test", "rollout_percentage": 100}]
            },
            payloads={"test": '"big button"'},
        ),  # fmt: skip
        flag(
            "company-tools",
            {
                "properties": [{"key": "size", "operator": "gt", "value": 100, "type": "group", "group_type_index": 0}],
                "rollout_percentage": 100,
            },
            aggregation_group_type_index=0,
        ),  # fmt: skip
    ],
    "group_type_mapping": {"0": "company"},
    "cohorts": {},
}


@pytest.fixture
def local_flags(flag_server, provider):
    """A pipeline with a personal key, definitions loaded from ``flag_server``."""
    flag_server.definitions = json.loads(json.dumps(DEFINITIONS))
    pipeline = posthog_otel.configure(api_key=API_KEY, host=flag_server.url, personal_api_key=PERSONAL_KEY,
                                      logger_provider=provider, schedule_delay_millis=50)  # fmt: skip
    assert posthog_otel.load_feature_flags()
    return pipeline


# --- local evaluation ---------------------------------------------------------------------------


def test_flags_are_answered_locally_with_no_request(local_flags, flag_server):
    assert posthog_otel.get_feature_flag("beta", "u1", person_properties={"plan": "enterprise"}) is True
    assert posthog_otel.feature_enabled("beta", "u1", person_properties={"plan": "free"}) is False
    assert posthog_otel.get_feature_flag("checkout", "u1") == "test"
    assert posthog_otel.get_feature_flag_payload("checkout", "u1") == "big button"
    assert posthog_otel.get_feature_flag_payload("beta", "u1", person_properties={"plan": "enterprise"}) == {
        "theme": "dark"
    }
    assert posthog_otel.get_feature_flag("company-tools", "u1", groups={"company": "acme"},
                                         group_properties={"company": {"size": 500}}) is True  # fmt: skip
    assert posthog_otel.get_feature_flag("company-tools", "u1") is False  # no company named: off, no question
    assert flag_server.flag_posts() == []


def test_definitions_request_is_posthogs(local_flags, flag_server):
    assert posthog_otel.feature_flag_definitions() == DEFINITIONS["flags"]
    (method, path, headers, _), *_ = flag_server.gets()
    assert path == "/flags/definitions?token=%s&send_cohorts" % API_KEY
    assert headers["Authorization"] == "Bearer " + PERSONAL_KEY


def test_undecidable_flag_falls_back_to_flags(local_flags, flag_server):
    assert posthog_otel.get_feature_flag("beta", "u1") == "from-server"  # plan not given
    (body,) = flag_server.flag_posts()
    assert body["flag_keys_to_evaluate"] == ["beta"]
    assert body["distinct_id"] == "u1" and body["person_properties"] == {}


def test_only_evaluate_locally_never_asks(local_flags, flag_server):
    assert posthog_otel.get_feature_flag("beta", "u1", only_evaluate_locally=True) is None
    assert posthog_otel.get_feature_flag("unknown", "u1", only_evaluate_locally=True) is None
    assert posthog_otel.get_all_flags("u1", only_evaluate_locally=True) == {"checkout": "test", "company-tools": False}
    assert flag_server.flag_posts() == []


def test_unknown_flag_is_asked_of_posthog(local_flags, flag_server):
    assert posthog_otel.get_feature_flag("created-after-the-last-poll", "u1") == "from-server"


def test_all_flags_ask_once_for_what_is_left_and_posthog_answers_win(local_flags, flag_server):
    answer = posthog_otel.get_all_flags_and_payloads("u1")
    assert len(flag_server.flag_posts()) == 1
    assert answer["featureFlags"] == {"beta": "from-server", "checkout": "from-server", "company-tools": "from-server"}
    assert answer["featureFlagPayloads"]["beta"] == '"remote"'
    flag_server.requests.clear()
    local = posthog_otel.get_all_flags_and_payloads("u1", person_properties={"plan": "enterprise"})
    assert flag_server.flag_posts() == []
    assert local == {"featureFlags": {"beta": True, "checkout": "test", "company-tools": False},
                     "featureFlagPayloads": {"beta": '{"theme": "dark"}', "checkout": '"big button"'}}  # fmt: skip


def test_without_personal_key_every_flag_is_asked(flag_server, provider):
    posthog_otel.configure(api_key=API_KEY, host=flag_server.url, logger_provider=provider)
    assert posthog_otel.get_feature_flag("beta", "u1", person_properties={"plan": "enterprise"}) == "from-server"
    assert flag_server.gets() == []
    assert posthog_otel.get_feature_flag("beta", "u1", only_evaluate_locally=True) is None


def test_local_evaluation_switch_off_asks_every_flag(flag_server, provider):
    flag_server.definitions = DEFINITIONS
    posthog_otel.configure(api_key=API_KEY, host=flag_server.url, personal_api_key=PERSONAL_KEY,
                           local_evaluation=False, logger_provider=provider)  # fmt: skip
    assert posthog_otel.get_feature_flag("beta", "u1", person_properties={"plan": "enterprise"}) == "from-server"
    assert flag_server.gets() == []


def test_secret_key_is_the_newer_name(flag_server, provider, monkeypatch):
    flag_server.definitions = DEFINITIONS
    monkeypatch.setenv("POSTHOG_SECRET_KEY", "phs_secret0123456789abcdefghijklmnop")
    posthog_otel.configure(api_key=API_KEY, host=flag_server.url, logger_provider=provider)
    assert posthog_otel.load_feature_flags()
    assert flag_server.gets()[0][2]["Authorization"] == "Bearer phs_secret0123456789abcdefghijklmnop"


def test_first_read_waits_for_the_first_load_and_is_local(flag_server, provider):
    flag_server.definitions = DEFINITIONS
    posthog_otel.configure(
        api_key=API_KEY, host=flag_server.url, personal_api_key=PERSONAL_KEY, logger_provider=provider
    )
    assert posthog_otel.get_feature_flag("checkout", "u1") == "test"
    assert flag_server.flag_posts() == []


def test_module_attributes_configure_flags_the_seed_way(flag_server, monkeypatch, provider):
    flag_server.definitions = DEFINITIONS
    monkeypatch.setattr(posthog_otel, "api_key", API_KEY)
    monkeypatch.setattr(posthog_otel, "host", flag_server.url)
    monkeypatch.setattr(posthog_otel, "personal_api_key", PERSONAL_KEY)
    assert posthog_otel.get_feature_flag("checkout", "u1", send_feature_flag_events=False) == "test"
    assert flag_server.flag_posts() == []


# --- events ---------------------------------------------------------------------------------------


def test_flag_called_is_reported_once_per_person_flag_value_and_groups(local_flags, flag_server):
    for _ in range(3):
        posthog_otel.get_feature_flag("beta", "u1", person_properties={"plan": "enterprise"})
    posthog_otel.get_feature_flag("beta", "u1", person_properties={"plan": "free"})  # another value
    posthog_otel.get_feature_flag("beta", "u2", person_properties={"plan": "free"})  # another person
    posthog_otel.get_feature_flag("beta", "u2", groups={"company": "acme"}, person_properties={"plan": "free"})
    local_flags.flush()
    called = flag_server.events("$feature_flag_called")
    assert [(e["distinct_id"], e["properties"]["$feature_flag_response"]) for e in called] == [
        ("u1", True), ("u1", False), ("u2", False), ("u2", False)]  # fmt: skip
    first = called[0]["properties"]
    assert first["locally_evaluated"] is True and first["$feature/beta"] is True
    assert first["$feature_flag_payload"] == {"theme": "dark"} and first["$feature_flag_id"] == 1
    assert called[3]["properties"]["$groups"] == {"company": "acme"}


def test_send_feature_flag_events_false_reports_nothing(local_flags, flag_server):
    posthog_otel.get_feature_flag("checkout", "u1", send_feature_flag_events=False)
    posthog_otel.get_all_flags("u1")
    local_flags.flush()
    assert flag_server.events("$feature_flag_called") == []


def test_fallback_event_says_it_was_not_local(local_flags, flag_server):
    posthog_otel.get_feature_flag("beta", "u1")
    local_flags.flush()
    (event,) = flag_server.events("$feature_flag_called")
    properties = event["properties"]
    assert properties["locally_evaluated"] is False
    assert properties["$feature_flag_request_id"] == "request-1"
    assert properties["$feature_flag_reason"] == "Matched on the server"
    assert (properties["$feature_flag_id"], properties["$feature_flag_version"]) == (99, 7)


def test_dedup_store_is_bounded():
    from posthog_otel._flags.events import CalledEvents

    store = CalledEvents(max_people=3)
    for person in ("a", "b", "c", "d"):
        assert store.first_time(person, "flag", True, None)
    assert len(store) == 3
    assert not store.first_time("d", "flag", True, None)
    assert store.first_time("a", "flag", True, None)  # forgotten: reported again
    assert store.first_time("d", "flag", True, {"company": "acme"})


def test_failed_request_is_reported_with_its_error(local_flags, flag_server):
    flag_server.answer = lambda payload: (500, {"error": "boom"})
    assert posthog_otel.get_feature_flag("beta", "u1") is None
    local_flags.flush()
    (event,) = flag_server.events("$feature_flag_called")
    assert event["properties"]["$feature_flag_error"] == "api_error_500"
    assert event["properties"]["$feature_flag_response"] is None


# --- evaluate_flags and capture(flags=...) ------------------------------------------------------------


def test_snapshot_attaches_the_values_to_capture(local_flags, flag_server):
    flags = posthog_otel.evaluate_flags("u1", person_properties={"plan": "enterprise"})
    assert flags.keys == ["beta", "checkout", "company-tools"]
    assert flags.is_enabled("beta") and flags.get_flag("checkout") == "test"
    assert flags.get_flag_payload("checkout") == "big button"
    posthog_otel.capture("u1", "page_viewed", {"page": "/"}, flags=flags)
    local_flags.flush()
    (event,) = flag_server.events("page_viewed")
    assert event["properties"]["$feature/checkout"] == "test"
    assert event["properties"]["$feature/company-tools"] is False
    assert event["properties"]["$active_feature_flags"] == ["beta", "checkout"]
    assert event["properties"]["page"] == "/"
    reads = flag_server.events("$feature_flag_called")
    assert [e["properties"]["$feature_flag"] for e in reads] == ["beta", "checkout"]  # reads report, capture does not
    assert reads[0]["properties"]["$feature_flag_reason"] == "Evaluated locally"
    assert flag_server.flag_posts() == []


def test_snapshot_asks_once_for_what_local_evaluation_left(local_flags, flag_server):
    flags = posthog_otel.evaluate_flags("u1")  # beta needs plan
    assert len(flag_server.flag_posts()) == 1
    assert flags.get_flag("beta") == "from-server" and flags.get_flag("checkout") == "test"
    assert dict(posthog_otel.evaluate_flags("u1", only_evaluate_locally=True).unresolved_flags) == {
        "beta": "missing_context"
    }


def test_snapshot_only_and_only_accessed(local_flags):
    flags = posthog_otel.evaluate_flags("u1", person_properties={"plan": "enterprise"})
    flags.get_flag("checkout", send_feature_flag_events=False)
    assert flags.only_accessed().keys == ["checkout"]
    assert flags.only(["beta", "nope"]).keys == ["beta"]
    assert posthog_otel.evaluate_flags("u1", flag_keys=[]).keys == []


def test_capture_flags_must_be_a_snapshot(local_flags, flag_server, caplog):
    assert posthog_otel.capture("u1", "page_viewed", flags={"beta": True})
    local_flags.flush()
    assert "$feature/beta" not in flag_server.events("page_viewed")[0]["properties"]
    assert "takes what evaluate_flags() returns" in caplog.text


# --- asyncio -------------------------------------------------------------------------------------------


def test_async_calls_never_block_the_loop(local_flags, flag_server):
    release = threading.Event()

    def slow_answer(payload: Dict[str, Any]) -> Tuple[int, Any]:
        if not release.wait(5):  # the loop never ran while /flags was being asked: it was blocked
            return 503, {"error": "the event loop was blocked"}
        return 200, server_answer(payload["flag_keys_to_evaluate"])

    flag_server.answer = slow_answer

    async def main() -> Tuple[Any, Any]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while not release.is_set():
                ticks += 1
                if ticks == 5:
                    release.set()  # the loop ran while /flags was waiting: let it answer
                await asyncio.sleep(0.001)

        remote, local, _ = await asyncio.gather(
            posthog_otel.get_feature_flag_async("beta", "u1"),
            posthog_otel.get_feature_flag_async("checkout", "u1"),
            ticker(),
        )
        return remote, local

    assert asyncio.run(main()) == ("from-server", "test")


def test_async_variants_answer_like_the_sync_calls(local_flags):
    async def main() -> List[Any]:
        props = {"plan": "enterprise"}
        flags = await posthog_otel.evaluate_flags_async("u1", person_properties=props)
        return [
            await posthog_otel.feature_enabled_async("beta", "u1", person_properties=props),
            await posthog_otel.get_feature_flag_payload_async("checkout", "u1"),
            await posthog_otel.get_all_flags_async("u1", person_properties=props),
            (await posthog_otel.get_all_flags_and_payloads_async("u1", person_properties=props))["featureFlagPayloads"],
            flags.get_flag("checkout"),
        ]

    props = {"plan": "enterprise"}
    assert asyncio.run(main()) == [
        posthog_otel.feature_enabled("beta", "u1", person_properties=props),
        posthog_otel.get_feature_flag_payload("checkout", "u1"),
        posthog_otel.get_all_flags("u1", person_properties=props),
        posthog_otel.get_all_flags_and_payloads("u1", person_properties=props)["featureFlagPayloads"],
        "test",
    ]


# --- failures never reach the caller --------------------------------------------------------------


def test_flags_unreachable_returns_none_with_a_warning(provider, caplog):
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # bound, not listening: refused, and no one else can take the port meanwhile
        posthog_otel.configure(
            api_key=API_KEY, host="http://127.0.0.1:%d" % bound.getsockname()[1], logger_provider=provider
        )
        assert posthog_otel.feature_enabled("new_dashboard", "user123") is None
    assert "could not reach" in caplog.text


def test_no_distinct_id_is_none_and_counted(local_flags):
    assert posthog_otel.get_feature_flag("checkout") is None
    assert posthog_otel.drop_counts()["no_distinct_id"] == 1
    assert posthog_otel.evaluate_flags().keys == []


def test_flags_use_the_context_person(local_flags, flag_server):
    with posthog_otel.new_context():
        posthog_otel.identify_context("from-context")
        assert posthog_otel.get_feature_flag("beta") == "from-server"
    (body,) = flag_server.flag_posts()
    assert body["distinct_id"] == "from-context"


# --- any input, no exception --------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


class _HostileMap(dict):
    """A map whose reading fails (what a buggy caller's mapping can do)."""

    def items(self):  # type: ignore[override]
        raise RuntimeError("items")


class _Unprintable:
    """Cannot be turned into text (its repr works, so a failing example can be shown)."""

    def __str__(self) -> str:
        raise RuntimeError("str")

    def __repr__(self) -> str:
        return "_Unprintable()"


junk = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5), st.binary(max_size=3),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                 st.builds(_HostileMap, st.dictionaries(st.sampled_from(["plan", "company"]), st.integers(), max_size=2)),
                 st.builds(_Unprintable))  # fmt: skip
maps_or_junk = st.one_of(junk, st.dictionaries(st.sampled_from(["plan", "company", "distinct_id"]), junk, max_size=3))


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(key=st.one_of(st.sampled_from(["beta", "checkout", "company-tools", "nope"]), junk), distinct_id=junk,
       groups=maps_or_junk, person_properties=maps_or_junk, group_properties=maps_or_junk,
       only_evaluate_locally=st.booleans(), flag_keys=st.one_of(st.none(), junk, st.lists(junk, max_size=2)))  # fmt: skip
def test_flag_calls_never_raise_whatever_they_are_given(local_flags, key, distinct_id, groups, person_properties,
                                                         group_properties, only_evaluate_locally, flag_keys):  # fmt: skip
    """Internal errors raise under this suite; bad input must be warned about and answered, not crash."""
    given = dict(groups=groups, person_properties=person_properties, group_properties=group_properties,
                 only_evaluate_locally=only_evaluate_locally)  # fmt: skip
    assert posthog_otel.get_feature_flag(key, distinct_id, **given) in (None, True, False, "test", "from-server")
    assert posthog_otel.feature_enabled(key, distinct_id, **given) in (None, True, False)
    posthog_otel.get_feature_flag_payload(key, distinct_id, **given)
    answer = posthog_otel.get_all_flags_and_payloads(distinct_id, flag_keys_to_evaluate=flag_keys, **given)
    assert answer["featureFlags"] is None or isinstance(answer["featureFlags"], dict)
    snapshot = posthog_otel.evaluate_flags(distinct_id, flag_keys=flag_keys, **given)
    posthog_otel.capture("u1", "event", flags=snapshot.only_accessed())
    assert isinstance(snapshot.keys, list)


# --- /flags: a transient failure is asked again, within the read's one deadline ------------------


@pytest.mark.parametrize("status", [502, 504])
def test_a_gateway_failure_is_asked_again_and_its_answer_returned(flag_server, provider, status):
    """PostHog's SDK asks once more after a 502 or a 504 (the harness's retries_flags_on_502/_504)."""
    failures = deque([(status, {"error": "gateway"})])
    flag_server.answer = lambda payload: failures.popleft() if failures else (200, server_answer(["beta"]))
    posthog_otel.configure(api_key=API_KEY, host=flag_server.url, logger_provider=provider)
    assert posthog_otel.get_feature_flag("beta", "u1") == "from-server"
    assert len(flag_server.flag_posts()) == 2


def test_a_server_error_is_not_asked_again(flag_server, provider):
    flag_server.answer = lambda payload: (500, {"error": "boom"})
    posthog_otel.configure(api_key=API_KEY, host=flag_server.url, logger_provider=provider)
    assert posthog_otel.get_feature_flag("beta", "u1") is None
    assert len(flag_server.flag_posts()) == 1
