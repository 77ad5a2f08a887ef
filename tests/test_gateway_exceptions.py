"""The gateway turns any language's OTel exception log records (``exception.*``) into ``$exception``
when ``capture_exceptions`` is on: real HTTP to the gateway in this process, a loopback PostHog."""

from __future__ import annotations

import json

import requests

from posthog_otel._config import Settings
from posthog_otel._exceptions import limits
from posthog_otel.gateway import GatewaySettings, create_app  # noqa: E402  (after the skips in gateway_support)
from posthog_otel.gateway._otlp import decode_json, decode_protobuf  # noqa: E402

from .gateway_support import InProcess, protobuf_headers, record, request
from .test_gateway_otlp import RECEIVED, as_otlp_json

JAVA = """java.lang.IllegalStateException: ledger closed
\tat com.shop.Ledger.post(Ledger.java:88)
\tat com.shop.Checkout.pay(Checkout.java:41)
Caused by: java.io.IOException: disk full
\tat com.shop.Disk.write(Disk.java:12)
\t... 2 more
"""
NODE = """TypeError: Cannot read properties of undefined (reading 'total')
    at priceOf (/srv/app/basket.js:17:22)
    at /srv/app/node_modules/express/lib/router.js:284:7
"""


def java_record(**attributes):
    return record("", {"exception.type": "java.lang.IllegalStateException", "exception.message": "ledger closed",
                       "exception.stacktrace": JAVA, **attributes}, "checkout failed", severity_number=17,
                  trace_id=bytes(range(16)), span_id=bytes(range(8)))  # fmt: skip


def start(server, **delivery):
    return InProcess(create_app(GatewaySettings(), Settings.resolve(host=server.url, **delivery)))


def post(gateway, body, headers):
    return requests.post(gateway.url + "/v1/logs", data=body, headers=headers, timeout=10)


def test_a_java_services_exception_log_is_an_exception_event_on_its_person(server):
    gateway = start(server, capture_exceptions=True)
    try:
        body = request([java_record(**{"user.id": "user_31"}), record(body="an ordinary log line")],
                       {"service.name": "ledger", "telemetry.sdk.language": "java"}).SerializeToString()  # fmt: skip
        assert post(gateway, body, protobuf_headers()).status_code == 200
        (event,) = server.wait_for_events(1)
    finally:
        gateway.close()
    assert (event["event"], event["distinct_id"]) == ("$exception", "user_31")
    properties = event["properties"]
    assert properties["$trace_id"] == bytes(range(16)).hex() and properties["log.message"] == "checkout failed"
    outer, cause = properties["$exception_list"]
    assert (outer["type"], outer["value"], cause["type"], cause["mechanism"]["source"]) == (
        "java.lang.IllegalStateException", "ledger closed", "java.io.IOException", "cause")  # fmt: skip
    assert [f["function"] for f in outer["stacktrace"]["frames"]] == ["com.shop.Checkout.pay", "com.shop.Ledger.post"]
    assert outer["stacktrace"]["frames"][-1] == {
        "platform": "custom",
        "lang": "java",
        "function": "com.shop.Ledger.post",
        "module": "com.shop.Ledger",
        "filename": "Ledger.java",
        "lineno": 88,
    }


def test_otlp_json_from_node_and_off_by_default(server):
    node = record("", {"exception.type": "TypeError", "exception.message": "Cannot read properties of undefined "
                       "(reading 'total')", "exception.stacktrace": NODE})  # fmt: skip
    body = as_otlp_json(request([node]))
    headers = {**protobuf_headers(), "Content-Type": "application/json"}
    off = start(server)
    try:
        assert post(off, body, headers).status_code == 200
    finally:
        off.close()
    assert server.events == []
    on = start(server, capture_exceptions=True)
    try:
        assert post(on, body, headers).status_code == 200
        (event,) = server.wait_for_events(1)
    finally:
        on.close()
    frames = event["properties"]["$exception_list"][0]["stacktrace"]["frames"]
    assert [(f["function"], f["lineno"], f.get("in_app")) for f in frames] == [
        ("<anonymous>", 284, False),
        ("priceOf", 17, None),
    ]
    assert event["properties"]["$process_person_profile"] is False


def test_protobuf_and_json_read_exception_records_the_same():
    message = request([java_record(**{"enduser.id": "u"}), record(body="x")], {"service.name": "ledger"})
    from_protobuf = decode_protobuf(message.SerializeToString(), RECEIVED, exceptions=True)
    limits.recent.reset()  # else the second reading is the first one's duplicate (same trace, same exception)
    from_json = decode_json(as_otlp_json(message), RECEIVED, exceptions=True)
    assert len(from_protobuf.operations) == 1
    assert json.dumps(from_protobuf.operations, sort_keys=True) == json.dumps(from_json.operations, sort_keys=True)
