"""Code written for PostHog's SDK, with only the import changed: every setting and call either
works with PostHog's meaning or is refused out loud; never silently ignored.

The differential tests run the same application code through PostHog's SDK 7.91.1 (the oracle,
Python >= 3.10) and through posthog_otel against the same loopback server, and compare what
arrives, what does not, what the calls return and what ``on_error`` is told. Then one test per
silent case of issue 16, each seeing a clear line and a count (or the right delivery) now.
"""

from __future__ import annotations

import logging
import sys
import textwrap
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import posthog_otel
from posthog_otel import _options

from .conftest import API_KEY
from .support import Fault
from .test_autoconfigure import run
from .test_conformance import normalise


@pytest.fixture
def posthog_sdk():
    return pytest.importorskip("posthog")


def events_of(server, api_key=API_KEY):
    """What reached the server for one project, normalised as the conformance tests do."""
    kept = []
    for request in server.accepted:
        payload = request.payload or {}
        if payload.get("api_key", API_KEY) == api_key:
            kept.extend(payload.get("batch", []))
    return kept


def compare(server, app, posthog_sdk, **options):
    """Run ``app(client)`` with PostHog's ``Posthog`` and with ours, same options; return
    (PostHog's events, ours, PostHog's return values, ours)."""
    reference = posthog_sdk.Posthog(API_KEY, host=server.url, **options)
    returned_reference = app(reference)
    reference.flush()
    reference.shutdown()
    expected = [normalise(e, ours=False) for e in server.events]
    server.reset()

    client = posthog_otel.Posthog(API_KEY, host=server.url, flush_interval=0.05, **options)
    returned = app(client)
    client.flush()
    actual = [normalise(e, ours=True) for e in server.events]
    client.shutdown()
    return expected, actual, returned_reference, returned


def shapes(returned):
    """Return values, with uuids replaced by their kind (each SDK makes its own)."""
    return [("uuid" if _is_uuid(value) else value) for value in returned]


def _is_uuid(value):
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def scrub(event):
    """A PII hook, written once for both SDKs: email out of person updates, 'secret' events dropped."""
    if event["event"] == "secret":
        return None
    if "$set" in event:
        event["$set"] = {k: v for k, v in event["$set"].items() if k != "email"}
    event["properties"]["scrubbed"] = True
    return event


def the_app(client):
    return [
        client.set(distinct_id="user123", properties={"email": "jane@example.com", "plan": "pro"}),
        client.capture("secret", distinct_id="user123", properties={"card": "4242"}),
        client.capture("signup", distinct_id="user123", properties={"plan": "pro"}, groups={"company": "acme"}),
        client.group_identify("company", "acme", {"name": "Acme"}),
    ]


# --- differential: the same options, the same events --------------------------------------


def test_before_send_scrubs_and_drops_as_posthogs_does(server, posthog_sdk):
    expected, actual, _, returned = compare(server, the_app, posthog_sdk, before_send=scrub)
    assert actual == expected
    assert [e["event"] for e in actual] == ["$set", "signup", "$groupidentify"]
    assert all("email" not in e.get("$set", {}) and "4242" not in str(e) for e in actual)  # what must not arrive
    assert posthog_otel.drop_counts()["before_send"] == 1
    assert returned[1] is not None  # the uuid was returned before the hook ran: counted, not lost


def test_a_raising_before_send_drops_the_event_as_posthogs_does(server, posthog_sdk, caplog):
    def hook(event):
        if event["event"] == "signup":
            raise RuntimeError("boom")
        return event

    expected, actual, _, _ = compare(server, the_app, posthog_sdk, before_send=hook)
    assert actual == expected and [e["event"] for e in actual] == ["$set", "secret", "$groupidentify"]
    assert posthog_otel.drop_counts()["before_send_error"] == 1
    assert "before_send raised RuntimeError (boom)" in caplog.text


def test_a_before_send_that_returns_no_dict_drops_the_event(server, posthog_sdk):
    expected, actual, _, _ = compare(server, the_app, posthog_sdk, before_send=lambda e: "nope")
    assert actual == expected == []
    assert posthog_otel.drop_counts()["before_send_error"] == 4


def test_a_before_send_that_changes_the_uuid_is_overruled_and_told(server, caplog):
    client = posthog_otel.Posthog(API_KEY, host=server.url, before_send=lambda e: {**e, "uuid": str(uuid.uuid4())})
    returned = client.capture("signup", distinct_id="u1")
    client.flush()
    assert [e["uuid"] for e in server.events] == [returned]  # the returned uuid is the one PostHog gets
    assert "before_send changed an event's uuid" in caplog.text
    client.shutdown()


def test_before_send_takes_a_list_applied_in_order_and_a_name_from_the_environment(server, monkeypatch):
    client = posthog_otel.Posthog(
        API_KEY, host=server.url, before_send=[scrub, lambda e: {**e, "event": e["event"].upper()}]
    )
    the_app(client)
    client.flush()
    assert [e["event"] for e in server.events] == ["$SET", "SIGNUP", "$GROUPIDENTIFY"]
    client.shutdown()
    server.reset()
    monkeypatch.setenv("POSTHOG_OTEL_BEFORE_SEND", "tests.test_posthog_compat:scrub")
    monkeypatch.setenv("POSTHOG_OTEL_SUPER_PROPERTIES", '{"service": "env"}')
    pipeline = posthog_otel.configure(api_key=API_KEY, host=server.url)  # as opentelemetry-instrument would: no code
    the_app(posthog_otel)
    pipeline.flush()
    assert [(e["event"], e["properties"]["service"]) for e in server.events] == [
        ("$set", "env"),
        ("signup", "env"),
        ("$groupidentify", "env"),
    ]
    assert "email" not in server.events[0]["$set"]


def test_module_hooks_reach_an_exporter_set_up_without_them(server):
    """posthog_otel.before_send applies to a pipeline configured another way (configure(), opentelemetry-instrument)."""
    pipeline = posthog_otel.configure(api_key=API_KEY, host=server.url)
    posthog_otel.before_send = scrub
    the_app(posthog_otel)
    pipeline.flush()
    assert [e["event"] for e in server.events] == ["$set", "signup", "$groupidentify"]
    posthog_otel.before_send = None
    posthog_otel.capture("secret", distinct_id="u")
    pipeline.flush()
    assert server.events[-1]["event"] == "secret"


def test_super_properties_as_posthogs(server, posthog_sdk):
    supers = {"service": "billing", "region": "eu", "plan": "overridden"}
    expected, actual, _, _ = compare(server, the_app, posthog_sdk, super_properties=supers)
    assert actual == expected
    assert all(e["properties"]["service"] == "billing" for e in actual)
    assert actual[1]["properties"]["plan"] == "overridden"  # super properties win, as PostHog's


def test_disabled_sends_nothing_and_returns_none_as_posthogs(server, posthog_sdk):
    expected, actual, returned_reference, returned = compare(server, the_app, posthog_sdk, disabled=True)
    assert actual == expected == []
    assert returned == returned_reference == [None] * 4
    assert posthog_otel.drop_counts() == {"disabled": 4}
    assert server.requests == []


def test_send_false_returns_uuids_and_sends_nothing_as_posthogs(server, posthog_sdk):
    expected, actual, returned_reference, returned = compare(server, the_app, posthog_sdk, send=False)
    assert actual == expected == []
    assert shapes(returned) == shapes(returned_reference) == ["uuid"] * 4
    assert posthog_otel.drop_counts() == {"not_sent": 4}


@pytest.mark.parametrize(
    "options",
    [{"disable_geoip": False}, {"is_server": False}, {"historical_migration": True}, {"gzip": False}],
    ids=lambda o: next(iter(o)),
)
def test_event_options_as_posthogs(server, posthog_sdk, options):
    expected, actual, _, _ = compare(server, the_app, posthog_sdk, **options)
    assert actual == expected and len(actual) == 4


def test_historical_migration_and_gzip_reach_the_request(server):
    client = posthog_otel.Posthog(API_KEY, host=server.url, historical_migration=True, gzip=False)
    client.set("u", {"a": 1})
    assert client.flush()
    (request,) = server.requests
    assert request.payload["historical_migration"] is True and "Content-Encoding" not in request.headers
    client.shutdown()


def test_on_error_is_told_what_posthog_refused_as_posthogs_is(server, posthog_sdk):
    told = {"reference": [], "ours": []}
    server.otherwise = lambda: Fault(status=400, body='{"detail": "invalid"}')
    reference = posthog_sdk.Posthog(API_KEY, host=server.url, on_error=lambda e, batch: told["reference"].append(batch))
    reference.capture("signup", distinct_id="u1")
    reference.flush()
    reference.shutdown()
    errors = []

    def on_error(error, batch):
        errors.append(error)
        told["ours"].append(batch)

    client = posthog_otel.Posthog(API_KEY, host=server.url, on_error=on_error, flush_interval=0.05)
    client.capture("signup", distinct_id="u1")
    client.flush()
    client.shutdown()
    assert (
        [[e["event"] for e in batch] for batch in told["ours"]]
        == [[e["event"] for e in batch] for batch in told["reference"]]
        == [["signup"]]
    )
    assert errors[0].reason == "rejected" and errors[0].status == 400
    assert posthog_otel.drop_counts()["rejected"] == 1


def test_an_on_error_that_raises_is_logged_never_propagated(server, caplog):
    server.otherwise = lambda: Fault(status=400)

    def on_error(error, batch):
        raise ValueError("callback broke")

    client = posthog_otel.Posthog(API_KEY, host=server.url, on_error=on_error, flush_interval=0.05)
    client.capture("signup", distinct_id="u1")
    client.flush()
    client.shutdown()
    assert "on_error raised ValueError: callback broke" in caplog.text


def test_sync_mode_delivers_before_the_call_returns(server, posthog_sdk):
    reference = posthog_sdk.Posthog(API_KEY, host=server.url, sync_mode=True)
    reference.set(distinct_id="u", properties={"a": 1})
    assert len(server.events) == 1  # PostHog's meaning: sent when the call returns
    reference.shutdown()
    server.reset()
    client = posthog_otel.Posthog(API_KEY, host=server.url, sync_mode=True)
    client.set(distinct_id="u", properties={"a": 1})
    assert [e["event"] for e in server.events] == ["$set"]
    client.shutdown()


def test_module_attribute_style_as_posthogs(server, posthog_sdk):
    """The seed's style, module attributes and module functions, on both SDKs."""

    def app(module):
        module.host = server.url
        module.before_send = scrub
        module.super_properties = {"service": "api"}
        returned = the_app(module)
        module.disabled = True
        returned.append(module.set(distinct_id="u2", properties={"late": True}))
        module.disabled = False
        module.flush()
        return returned

    posthog_sdk.default_client = None
    posthog_sdk.api_key = API_KEY
    try:
        returned_reference = app(posthog_sdk)
        posthog_sdk.shutdown()
    finally:
        posthog_sdk.default_client = None
        posthog_sdk.api_key, posthog_sdk.host, posthog_sdk.before_send, posthog_sdk.super_properties = (
            None,
            None,
            None,
            None,
        )
        posthog_sdk.disabled = False
    expected = [normalise(e, ours=False) for e in server.events]
    server.reset()

    posthog_otel.api_key = API_KEY
    returned = app(posthog_otel)
    actual = [normalise(e, ours=True) for e in server.events]
    assert actual == expected and [e["event"] for e in actual] == ["$set", "signup", "$groupidentify"]
    # The one documented difference: the hook runs on the exporter's thread, after the call
    # returned its uuid, so the event it drops has a uuid here (and a count), None in PostHog's.
    assert shapes(returned_reference) == ["uuid", None, "uuid", "uuid", None]
    assert shapes(returned) == ["uuid", "uuid", "uuid", "uuid", None]
    assert posthog_otel.drop_counts() == {"before_send": 1, "disabled": 1}


def test_two_clients_deliver_to_two_projects(server):
    other_key = "phc_another_project_0123456789abcdef"
    a = posthog_otel.Posthog(API_KEY, host=server.url)
    b = posthog_otel.Client(other_key, host=server.url, super_properties={"from": "b"})
    a.set("u", {"plan": "a"})
    b.set("u", {"plan": "b"})
    posthog_otel.configure(api_key="phc_module_project_0123456789", host=server.url)
    posthog_otel.set("u", {"plan": "module"})
    assert a.flush() and b.flush() and posthog_otel.flush()
    assert [e["$set"] for e in events_of(server, API_KEY)] == [{"plan": "a"}]
    assert [(e["$set"], e["properties"]["from"]) for e in events_of(server, other_key)] == [({"plan": "b"}, "b")]
    assert [e["$set"] for e in events_of(server, "phc_module_project_0123456789")] == [{"plan": "module"}]
    a.shutdown()
    b.shutdown()
    assert a.set("u", {"x": 1}) is None and posthog_otel.drop_counts() == {"after_shutdown": 1}


def test_a_clients_flags_use_its_own_project(server):
    server.flags = {"beta": {"enabled": True, "variant": "b"}}
    client = posthog_otel.Posthog(API_KEY, host=server.url)
    assert client.get_feature_flag("beta", "u1") == "b"
    assert client.feature_enabled("beta", "u1") is True
    client.flush()
    (called,) = server.by_event("$feature_flag_called")
    assert called["properties"]["$feature_flag"] == "beta"
    flag_requests = [r for r in server.requests if r.path.startswith("/flags")]
    assert {r.payload["api_key"] for r in flag_requests} == {API_KEY}
    client.disabled = True
    assert client.get_feature_flag("beta", "u1") is None  # PostHog's disabled: no API requests
    client.shutdown()


def test_capture_with_send_feature_flags_attaches_them_as_posthogs(server, posthog_sdk):
    server.flags = {"beta": {"enabled": True, "variant": "b"}, "off": {"enabled": False}}

    def app(client):
        return [client.capture("signup", distinct_id="u1", send_feature_flags=True)]

    expected, actual, _, _ = compare(server, app, posthog_sdk)
    assert [e for e in actual if e["event"] == "signup"] == [e for e in expected if e["event"] == "signup"]
    (signup,) = [e for e in actual if e["event"] == "signup"]
    assert signup["properties"]["$feature/beta"] == "b" and signup["properties"]["$active_feature_flags"] == ["beta"]


def test_posthogs_capture_mode_enum_is_understood(server, posthog_sdk):
    client = posthog_otel.Posthog(API_KEY, host=server.url, capture_mode=posthog_sdk.CaptureMode.V1)
    assert client.settings.capture_mode == "v1"
    client.shutdown()


def test_flush_intervals_and_retries_are_in_posthogs_units():
    translated = _options.translate(
        {"flush_interval": 0.5, "max_retries": 0, "flush_at": 10, "max_queue_size": 99}, "x"
    )
    assert translated.batch == {"schedule_delay_millis": 500.0, "max_export_batch_size": 10, "max_queue_size": 99}
    assert translated.settings == {"max_attempts": 1}  # no retry: one attempt, as PostHog's 0 retries


# --- refused out loud -----------------------------------------------------------------------


@pytest.mark.parametrize("name", [o.name for o in _options.OPTIONS if o.status == _options.REFUSED])
def test_every_unsupported_option_is_refused_with_its_name_unless_it_is_posthogs_default(name, server):
    option = _options.BY_NAME[name]
    value = 12345 if not isinstance(option.default, bool) else not option.default
    with pytest.raises(ValueError, match=name):
        posthog_otel.Posthog(API_KEY, host=server.url, **{name: value})
    posthog_otel.Posthog(API_KEY, host=server.url, **{name: option.default}).shutdown()  # the default asks nothing
    if option.module:
        with pytest.raises(ValueError, match="posthog_otel.%s" % name):
            setattr(posthog_otel, name, value)
        setattr(posthog_otel, name, option.default)


def test_a_misspelt_module_option_is_refused_with_the_nearest_name():
    with pytest.raises(AttributeError, match="did you mean api_key"):
        posthog_otel.api_kye = "phc_x"
    with pytest.raises(AttributeError, match="did you mean before_send"):
        posthog_otel.before_sned = lambda e: e
    assert not hasattr(posthog_otel, "api_kye")


def test_a_misspelt_client_keyword_is_refused_with_the_nearest_name():
    with pytest.raises(TypeError, match="did you mean flush_interval"):
        posthog_otel.Posthog(API_KEY, flush_intervall=1)


def test_a_bad_value_is_refused_on_the_assigning_line():
    with pytest.raises(ValueError, match="host"):
        posthog_otel.host = "ftp://nowhere"
    with pytest.raises(ValueError, match="personal_api_key"):
        posthog_otel.api_key = "phx_personal0123456789abcdef"
    with pytest.raises(ValueError, match="before_send"):
        posthog_otel.before_send = "not callable and no module:function"


def test_a_posthog_call_we_lack_says_why_when_reached_for():
    with pytest.raises(AttributeError, match="capture_ai: PostHog's AI capture lane"):
        posthog_otel.capture_ai  # noqa: B018


def test_thread_has_no_effect_and_says_so(server, caplog):
    posthog_otel.Posthog(API_KEY, host=server.url, thread=4).shutdown()
    assert "thread=4 has no effect" in caplog.text


# --- each silent case of issue 16, now a line and a count (or a delivery) ---------------------


APP = textwrap.dedent(
    """
    import sys
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult

    class Elsewhere(LogRecordExporter):  # stands for the app's OTLP exporter
        def export(self, batch):
            return LogRecordExportResult.SUCCESS

        def shutdown(self):
            pass

        def force_flush(self, timeout_millis=30000):
            return True

    provider = LoggerProvider()  # the application's own: OTLP logs, a framework's set-up...
    provider.add_log_record_processor(BatchLogRecordProcessor(Elsewhere()))
    set_logger_provider(provider)

    import posthog_otel as posthog

    posthog.api_key = sys.argv[1]
    posthog.host = sys.argv[2]
    print(posthog.set("u1", {"plan": "pro"}))
    print(posthog.flush(10))
    print(posthog.drop_counts())
    """
)


def test_api_key_style_with_the_applications_own_logger_provider_delivers(server):
    result = run([sys.executable, "-c", APP, API_KEY, server.url])
    assert result.returncode == 0, result.stderr
    uuid_line, flushed, drops = result.stdout.split("\n")[:3]
    assert flushed == "True" and drops == "{}"
    assert [(e["event"], e["uuid"]) for e in server.events] == [("$set", uuid_line)]


def test_module_flush_and_shutdown_under_opentelemetry_instrument(server):
    from .test_autoconfigure import APPS, BIN

    instrument = BIN / "opentelemetry-instrument"
    if not instrument.exists():
        pytest.skip("opentelemetry-instrumentation is not installed")
    result = run(
        [str(instrument), sys.executable, str(APPS / "instrumented_lifecycle_app.py")],
        OTEL_LOGS_EXPORTER="posthog", OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none",
        POSTHOG_HOST=server.url, POSTHOG_API_KEY=API_KEY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:4] == ["True", "None", "None", "{'after_shutdown': 1}"]
    assert [e["$set"] for e in server.events] == [{"plan": "premium"}]


def test_otel_sdk_disabled_is_said_counted_and_flush_does_not_claim_success(server, monkeypatch, caplog):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    from opentelemetry.sdk._logs import LoggerProvider

    pipeline = posthog_otel.configure(
        api_key=API_KEY, host=server.url, logger_provider=LoggerProvider(shutdown_on_exit=False)
    )
    assert posthog_otel.set("u1", {"plan": "pro"}) is None
    assert posthog_otel.capture("u1", "e") is None
    assert pipeline.flush(1) is False and posthog_otel.flush(1) is False
    assert posthog_otel.drop_counts() == {"otel_sdk_disabled": 2}
    assert "OTEL_SDK_DISABLED=true" in caplog.text
    assert server.requests == []


def test_module_flush_shutdown_and_join_exist_in_posthogs_units(server):
    posthog_otel.api_key = API_KEY
    posthog_otel.host = server.url
    posthog_otel.set("u1", {"plan": "pro"})
    assert posthog_otel.flush(5) is True  # seconds, as PostHog's
    assert [e["event"] for e in server.events] == ["$set"]
    posthog_otel.join()
    assert posthog_otel.set("u1", {"plan": "x"}) is None
    assert posthog_otel.drop_counts() == {"after_shutdown": 1}
    posthog_otel.shutdown()  # again: harmless


def test_pipeline_flush_takes_seconds_like_posthogs(server):
    server.fail_next(Fault(delay=1.5))
    pipeline = posthog_otel.configure(api_key=API_KEY, host=server.url, spool=False, schedule_delay_millis=10)
    posthog_otel.set("u1", {"plan": "pro"})
    assert pipeline.flush(5) is True  # five seconds, not five milliseconds


@pytest.mark.parametrize(
    "call,name,hint",
    [
        (lambda: posthog_otel.set("u", propertys={"a": 1}), "propertys", "did you mean properties?"),
        (lambda: posthog_otel.capture("u", "e", propertes={"a": 1}), "propertes", "did you mean properties?"),
        (lambda: posthog_otel.alias("a", "b", timestmp=1), "timestmp", "did you mean timestamp?"),
        (lambda: posthog_otel.group_identify("c", "k", bogus=1), "bogus", "it takes group_type, group_key"),
        (
            lambda: posthog_otel.get_feature_flag("f", "u", person_propertie={}),
            "person_propertie",
            "did you mean person_properties?",
        ),
    ],
)
def test_a_keyword_mistake_is_the_callers_and_named_every_time(pipeline, caplog, call, name, hint):
    assert call() is None
    assert "unknown keyword argument %r (%s" % (name, hint) in caplog.text
    assert "internal error" not in caplog.text
    assert posthog_otel.drop_counts() == {"invalid_argument": 1}


def test_two_different_mistakes_in_one_function_are_both_said(pipeline, caplog):
    posthog_otel.set("u", propertys={"a": 1})
    posthog_otel.set("u", properties={"a": 1}, timestmp=1)
    assert "'propertys'" in caplog.text and "'timestmp'" in caplog.text
    assert posthog_otel.drop_counts() == {"invalid_argument": 2}


def test_too_many_positional_arguments_are_said_with_the_signature(pipeline, caplog):
    assert posthog_otel.set("u", {"a": 1}, None, None, None, "extra") is None
    assert "set(): 6 positional argument(s) given; it takes distinct_id, properties" in caplog.text


def test_new_context_takes_posthogs_keywords_and_survives_a_wrong_one(pipeline, caplog, server):
    with posthog_otel.new_context(capture_exceptions=False):
        posthog_otel.identify_context("u1")
        posthog_otel.set({"a": 1})
    with posthog_otel.new_context(fresh=True, clinet=None):  # the block still runs
        posthog_otel.identify_context("u2")
        posthog_otel.set({"b": 2})
    pipeline.flush()
    assert [e["distinct_id"] for e in server.events] == ["u1", "u2"]
    assert "new_context() has no option 'clinet' (did you mean client?)" in caplog.text
    assert posthog_otel.drop_counts() == {"invalid_argument": 1}


def test_scoped_and_device_id_as_posthogs(pipeline, server):
    @posthog_otel.scoped()
    def handle(user):
        posthog_otel.identify_context(user)
        posthog_otel.set_context_device_id("device-1")
        assert posthog_otel.get_context_device_id() == "device-1"
        posthog_otel.capture("handled")

    handle("u1")
    assert posthog_otel.get_context_distinct_id() is None  # the scope closed with the call
    pipeline.flush()
    assert [(e["event"], e["distinct_id"]) for e in server.events] == [("handled", "u1")]


@pytest.mark.parametrize("style", ["argument", "environment", "attribute"])
def test_a_host_without_a_scheme_keeps_its_region_in_every_style(style, monkeypatch, caplog):
    from posthog_otel import PostHogLogExporter

    if style == "argument":
        exporter = PostHogLogExporter(api_key=API_KEY, host="eu.i.posthog.com")
    elif style == "environment":
        monkeypatch.setenv("POSTHOG_HOST", "eu.i.posthog.com")
        exporter = PostHogLogExporter(api_key=API_KEY)
    else:
        posthog_otel.host = "eu.i.posthog.com"
        exporter = posthog_otel.configure(api_key=API_KEY).exporter
    assert exporter.settings.host == "https://eu.i.posthog.com"
    assert "has no scheme; using https://eu.i.posthog.com" in caplog.text
    exporter.shutdown()


def test_swapped_keys_are_refused_naming_both(server):
    with pytest.raises(ValueError, match="personal_api_key") as error:
        posthog_otel.configure(api_key="phx_personal0123456789abcdef", personal_api_key=API_KEY, host=server.url)
    assert "0123456789abcdef" not in str(error.value)


def test_the_test_fixture_wins_over_the_applications_configure(posthog_local):
    """An app factory that configures PostHog during a test must not reach the real project."""
    posthog_otel.configure(api_key="phc_production_key_0123456789", host="https://eu.i.posthog.com")
    posthog_otel.set("u1", {"plan": "pro"})
    client = posthog_otel.Posthog("phc_production_key_0123456789", host="https://us.i.posthog.com")
    client.set("u2", {"plan": "team"})
    assert posthog_local.person("u1")["properties"] == {"plan": "pro"}
    assert posthog_local.person("u2")["properties"] == {"plan": "team"}


def test_an_unknown_person_fails_the_test_saying_so(posthog_local):
    posthog_otel.set("u1", {"plan": "pro"})
    with pytest.raises(AssertionError, match="no person with distinct id 'nobody'; persons it has: 'u1'"):
        posthog_local.person("nobody")
    assert posthog_local.find_person("nobody") is None


def test_debug_shows_the_packages_debug_lines(server, caplog):
    client = posthog_otel.Posthog(API_KEY, host=server.url, debug=True)
    try:
        assert logging.getLogger("posthog_otel").getEffectiveLevel() == logging.DEBUG
    finally:
        client.debug = False
        client.shutdown()
    assert logging.getLogger("posthog_otel").level == logging.NOTSET


def test_default_client_routes_the_module_functions(server):
    client = posthog_otel.Posthog(API_KEY, host=server.url)
    posthog_otel.default_client = client
    posthog_otel.set("u1", {"plan": "pro"})
    assert posthog_otel.flush() is True
    assert [e["distinct_id"] for e in server.events] == ["u1"]
    posthog_otel.default_client = None
    client.shutdown()


def test_a_pipeline_option_changed_later_rebuilds_the_module_pipeline(server):
    other = "phc_second_project_0123456789abc"
    posthog_otel.api_key = API_KEY
    posthog_otel.host = server.url
    posthog_otel.set("u1", {"a": 1})
    posthog_otel.api_key = other  # PostHog would ignore this silently; here it applies
    posthog_otel.set("u1", {"b": 2})
    assert posthog_otel.flush()
    assert [e["$set"] for e in events_of(server, API_KEY)] == [{"a": 1}]
    assert [e["$set"] for e in events_of(server, other)] == [{"b": 2}]


# --- properties: no input makes the new surface raise anything but its documented errors ------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(_options.MODULE_OPTIONS) + ["bogus", "api_kye", "dsiabled"]),
    value=st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30), st.lists(st.integers())
    ),
)
def test_any_module_assignment_is_taken_or_refused_cleanly(name, value):
    from posthog_otel import _module

    try:
        setattr(posthog_otel, name, value)
    except (AttributeError, ValueError, TypeError) as error:
        assert "posthog_otel" in str(error)
    finally:
        _module.reset()
    assert name in _options.BY_NAME or not hasattr(posthog_otel, name)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    options=st.dictionaries(
        st.sampled_from(sorted(_options.BY_NAME) + ["bogus", "spool_dir", "timeout"]),
        st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=10)),
        max_size=4,
    )
)
def test_any_client_options_build_a_client_or_raise_a_clear_error(options):
    options.pop("api_key", None)
    options.pop("project_api_key", None)
    options.pop("host", None)
    options["spool"] = False
    try:
        client = posthog_otel.Posthog(API_KEY, host="http://127.0.0.1:9", **options)
    except (TypeError, ValueError) as error:
        assert str(error).startswith("posthog_otel: ")
        return
    client.disabled = True
    client.shutdown()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keywords=st.dictionaries(
        st.text(min_size=1, max_size=12).filter(str.isidentifier),
        st.one_of(st.none(), st.integers(), st.text(max_size=5)),
        max_size=3,
    )
)
def test_operations_with_any_keywords_never_raise(pipeline, keywords):
    for operation in (posthog_otel.set, posthog_otel.set_once, posthog_otel.capture, posthog_otel.alias):
        operation("u", **keywords) if operation is not posthog_otel.capture else operation("u", "e", **keywords)
    with posthog_otel.new_context(**keywords):
        pass


# --- max_retries: PostHog's with the spool off; the spool keeps what it would drop ------------


def test_max_retries_is_posthogs_with_the_spool_off(server, caplog):
    """PostHog's max_retries=1: one retry, then the events are dropped, counted (the harness's
    max_retries_respected, issue 19)."""
    server.otherwise = lambda: Fault(status=503)
    client = posthog_otel.Posthog(API_KEY, host=server.url, max_retries=1, spool=False)
    client.capture("u", "e")
    client.flush(timeout_seconds=10)
    client.shutdown()
    assert len(server.requests) == 2
    assert posthog_otel.drop_counts() == {"delivery_failed": 1}
    assert "gives up only with spool=False" not in caplog.text


def test_max_retries_with_the_spool_on_says_the_spool_keeps_the_events(server, caplog):
    client = posthog_otel.Posthog(API_KEY, host=server.url, max_retries=3)
    client.shutdown()
    assert "max_attempts=4 (PostHog's max_retries=3) gives up only with spool=False" in caplog.text


# --- the README's table is the table ---------------------------------------------------------


def test_readme_lists_every_posthog_option_and_missing_call():
    """Each option of the table and each call we lack is in README's section, by name or by a
    `prefix_*` pattern written there."""
    import fnmatch
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Coming from PostHog's SDK", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([A-Za-z_*]+)(?:\(|`)", section))
    names = [o.name for o in _options.OPTIONS] + list(posthog_otel._NOT_HERE)
    missing = [n for n in names if not any(fnmatch.fnmatchcase(n, pattern) for pattern in named)]
    assert missing == []


# --- PostHog's error tracking options ----------------------------------------------------------


def _raise_in_a_thread():
    import threading

    def work():
        raise LookupError("no such order")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # pytest's own hook, after ours
def test_a_clients_exception_autocapture_sends_to_its_own_project(server):
    other = "phc_errors_project_0123456789abcd"
    client = posthog_otel.Posthog(other, host=server.url, enable_exception_autocapture=True, in_app_modules=["tests"])
    try:
        _raise_in_a_thread()
        assert client.flush()
    finally:
        posthog_otel.enable_exception_autocapture = False
        client.shutdown()
    (event,) = events_of(server, other)
    frames = event["properties"]["$exception_list"][0]["stacktrace"]["frames"]
    assert event["event"] == "$exception" and frames[-1]["function"] == "work" and frames[-1]["in_app"] is True


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_exception_options_as_module_attributes(server, tmp_path):
    posthog_otel.api_key = API_KEY
    posthog_otel.host = server.url
    posthog_otel.enable_exception_autocapture = True
    posthog_otel.project_root = str(tmp_path)  # nothing of ours lives there: no frame is in-app
    try:
        _raise_in_a_thread()
        assert posthog_otel.flush()
    finally:
        posthog_otel.enable_exception_autocapture = False
    (event,) = server.by_event("$exception")
    frames = event["properties"]["$exception_list"][0]["stacktrace"]["frames"]
    assert not any(frame.get("in_app") for frame in frames)
    with pytest.raises(ValueError, match="project_root"):
        posthog_otel.project_root = True


def test_a_clients_capture_exception_goes_to_its_project(server):
    other = "phc_errors_project_0123456789abcd"
    client = posthog_otel.Posthog(other, host=server.url)
    try:
        raise KeyError("order-7")
    except KeyError as error:
        returned = client.capture_exception(error, distinct_id="u1")
    assert client.flush()
    (event,) = events_of(server, other)
    assert (event["event"], event["distinct_id"], event["uuid"]) == ("$exception", "u1", returned)
    client.shutdown()


# --- found by review: each seen failing before its fix ------------------------------------------


def test_the_fixture_also_wins_over_a_client_made_before_it_started(server):
    """A client made at import (before posthog_local) must not reach its real host during the test."""
    from posthog_otel.testing import LocalPostHog

    client = posthog_otel.Posthog("phc_production_key_0123456789", host=server.url)
    posthog_otel.default_client = client
    with LocalPostHog() as local:
        client.capture("signup_in_test", distinct_id="user-1")
        posthog_otel.set("user-2", {"plan": "pro"})
        assert [e["event"] for e in local.events] == ["signup_in_test", "$set"]
    posthog_otel.default_client = None
    client.shutdown()
    assert server.requests == []


def test_the_first_calls_of_many_threads_build_one_pipeline_and_lose_nothing(server):
    import threading

    from posthog_otel import _setup

    posthog_otel.api_key = API_KEY
    posthog_otel.host = server.url
    barrier, returned = threading.Barrier(8), []

    def work(t):
        barrier.wait()
        returned.extend(posthog_otel.set("user-%d" % t, {"i": i}) for i in range(20))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert posthog_otel.flush(10) and posthog_otel.drop_counts() == {}
    assert sorted(e["uuid"] for e in server.events) == sorted(returned)
    assert len(_setup.pipelines()) == 1


def test_module_options_changing_while_calls_run_lose_nothing_and_pile_nothing_up(server):
    import threading

    from posthog_otel import _setup

    posthog_otel.api_key = API_KEY
    posthog_otel.host = server.url
    stop, returned = threading.Event(), []

    def work():
        while not stop.is_set():
            returned.append(posthog_otel.set("u", {"n": len(returned)}))

    thread = threading.Thread(target=work)
    thread.start()
    for timeout in range(5, 35):  # each change rebuilds the module's pipeline
        posthog_otel.feature_flags_request_timeout_seconds = timeout
        posthog_otel.set("u", {"changed": timeout})
    stop.set()
    thread.join()
    assert posthog_otel.flush(10) and None not in returned
    assert {e["uuid"] for e in server.events} >= set(returned)
    slot = _setup._slots[_setup.current().logger_provider]
    assert len(slot.processors) == 1  # one processor on the provider, not one per rebuild


def test_the_routed_default_client_takes_the_modules_disabled_and_before_send(server):
    client = posthog_otel.Posthog(API_KEY, host=server.url)
    posthog_otel.default_client = client
    posthog_otel.before_send = scrub
    posthog_otel.set("u1", {"email": "jane@example.com", "plan": "pro"})
    posthog_otel.disabled = True
    assert posthog_otel.set("u1", {"late": True}) is None
    posthog_otel.disabled = False
    assert client.flush()
    assert [e["$set"] for e in server.events] == [{"plan": "pro"}]
    server.flags = {"beta": {"enabled": True}}
    assert posthog_otel.feature_enabled("beta", "u1") is True  # the module's flag calls use it too
    posthog_otel.default_client = None
    client.shutdown()


def test_hooks_given_to_a_disabled_client_apply_once_it_is_enabled(server):
    client = posthog_otel.Posthog(API_KEY, host=server.url, disabled=True)
    client.before_send = scrub
    client.super_properties = {"app": "shop"}
    client.disabled = False
    client.set("u1", {"email": "jane@example.com", "plan": "pro"})
    assert client.flush()
    (event,) = server.events
    assert event["$set"] == {"plan": "pro"} and event["properties"]["app"] == "shop"
    assert client.before_send is scrub
    client.shutdown()


def test_a_module_hook_wins_over_the_environments(server, monkeypatch):
    monkeypatch.setenv("POSTHOG_OTEL_BEFORE_SEND", "tests.test_posthog_compat:scrub")
    pipeline = posthog_otel.configure(api_key=API_KEY, host=server.url)
    posthog_otel.before_send = lambda event: None if event["event"] == "dropped_by_module" else event
    posthog_otel.capture("u", "dropped_by_module")
    posthog_otel.capture("u", "secret")  # the environment's hook would drop it: the module's is in effect
    pipeline.flush()
    assert [e["event"] for e in server.events] == ["secret"]


def test_a_module_hook_after_a_configure_hook_is_said_to_be_overruled(server, caplog):
    pipeline = posthog_otel.configure(api_key=API_KEY, host=server.url, before_send=scrub)
    posthog_otel.before_send = lambda event: None
    posthog_otel.capture("u", "kept")
    pipeline.flush()
    assert [e["event"] for e in server.events] == ["kept"]
    assert "given its own before_send in code" in caplog.text


def test_a_clients_contexts_capture_with_that_client(server):
    module_project = posthog_otel.configure(api_key="phc_module_project_0123456789", host=server.url)
    other = "phc_client_project_0123456789abc"
    client = posthog_otel.Posthog(other, host=server.url)
    with pytest.raises(ValueError):
        with client.new_context(capture_exceptions=True):
            client.identify_context("user-b")
            raise ValueError("in the client's context")

    @client.scoped(capture_exceptions=True)
    def job():
        raise KeyError("in the client's scoped function")

    with pytest.raises(KeyError):
        job()
    assert client.flush() and module_project.flush()
    assert [e["event"] for e in events_of(server, other)] == ["$exception", "$exception"]
    assert events_of(server, "phc_module_project_0123456789") == []
    client.shutdown()


def test_on_error_that_flushes_does_not_stall_delivery(server, caplog):
    calls = []

    def on_error(error, batch):
        calls.append(client.flush(5))  # on the exporter's own thread: returns at once

    server.fail_next(Fault(status=400))
    client = posthog_otel.Posthog(API_KEY, host=server.url, on_error=on_error, flush_interval=0.05)
    client.capture("first", distinct_id="u")
    client.flush(10)
    client.capture("second", distinct_id="u")
    assert client.flush(10) is True
    assert calls == [False] and [e["event"] for e in server.events] == ["second"]
    assert "returns at once" in caplog.text
    client.shutdown()


def test_a_client_passing_posthogs_defaults_does_not_undo_another_clients_process_wide_options(server):
    from posthog_otel._exceptions import autocapture

    a = posthog_otel.Posthog(API_KEY, host=server.url, enable_exception_autocapture=True)
    b = posthog_otel.Posthog(API_KEY, host=server.url, enable_exception_autocapture=False, debug=False)
    try:
        assert autocapture.exception_autocapture_enabled()
    finally:
        posthog_otel.enable_exception_autocapture = False
        a.shutdown()
        b.shutdown()


def test_a_refused_value_is_not_shown(server):
    with pytest.raises(ValueError) as error:
        posthog_otel.Posthog(API_KEY, host=server.url, flag_fallback_cache_url="redis://user:s3cret@cache:6379")
    assert "s3cret" not in str(error.value) and "flag_fallback_cache_url" in str(error.value)


def test_flush_and_setup_with_nothing_configured_count_no_drop():
    """No operation was made, so none was dropped (whatever global provider an earlier test left)."""
    posthog_otel.setup()
    posthog_otel.flush(1)
    assert posthog_otel.drop_counts() == {}
