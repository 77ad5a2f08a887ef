"""Records written through stdlib ``logging`` and OpenTelemetry's ``LoggingHandler`` that follow
the schema (``event.name`` as an attribute: the handler sets no ``event_name``) are PostHog
operations, read the same way by the in-process exporter and by the gateway."""

from __future__ import annotations

import logging
import warnings

import pytest
import requests
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

import posthog_otel as posthog
from posthog_otel._config import Settings

from .conftest import API_KEY
from .support import CaptureServer

encode_logs = pytest.importorskip("opentelemetry.exporter.otlp.proto.common._log_encoder").encode_logs

#: What differs by road on purpose: the library that sent it, and the process's own description.
ROAD = ("$lib", "$lib_version", "$python_runtime", "$python_version", "$os", "$os_version", "$os_distro")


def _as_read(event):
    properties = {k: v for k, v in event["properties"].items() if k not in ROAD}
    return {**{k: v for k, v in event.items() if k not in ("properties", "uuid")}, "properties": properties}


def test_logging_records_that_follow_the_schema_are_exported_and_read_as_by_the_gateway(server):
    from posthog_otel.gateway import GatewaySettings, create_app

    from .gateway_support import InProcess, protobuf_headers

    provider = LoggerProvider(shutdown_on_exit=False)
    written = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(written))
    pipeline = posthog.configure(api_key=API_KEY, host=server.url, logger_provider=provider, schedule_delay_millis=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the SDK's handler, deprecated for instrumentation's
        from opentelemetry.sdk._logs import LoggingHandler

        handler = LoggingHandler(logger_provider=provider)
    log = logging.getLogger("billing-records")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        log.info({"plan": "pro", "seats": 12}, extra={"event.name": "posthog.set", "posthog.distinct_id": "user_456"})
        log.info({"source": "ad"}, extra={"event.name": "posthog.capture", "posthog.distinct_id": "user_456",
                                          "posthog.event": "signup", "posthog.groups.company": "acme"})  # fmt: skip
        log.info("an application's own line: not PostHog's")
    finally:
        log.removeHandler(handler)
    assert pipeline.flush()
    in_process = [_as_read(e) for e in server.events]
    assert [(e["event"], e["distinct_id"]) for e in in_process] == [("$set", "user_456"), ("signup", "user_456")]
    assert in_process[0]["$set"] == {"plan": "pro", "seats": 12}
    assert in_process[1]["properties"]["$groups"] == {"company": "acme"}
    assert posthog.drop_counts() == {}

    other = CaptureServer()
    gateway = InProcess(create_app(GatewaySettings(), Settings.resolve(host=other.url)))
    try:
        body = encode_logs(written.get_finished_logs()).SerializeToString()
        answer = requests.post(gateway.url + "/v1/logs", data=body, headers=protobuf_headers(API_KEY), timeout=10)
        assert answer.status_code == 200
        through_gateway = [_as_read(e) for e in other.wait_for_events(2, timeout=30)]
    finally:
        gateway.close()
        other.close()
    assert through_gateway == in_process
