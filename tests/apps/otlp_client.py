"""A Python service that knows nothing of posthog_otel: the standard OpenTelemetry SDK and its
OTLP/HTTP (protobuf) exporter, configured by the standard environment variables
(OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, OTEL_EXPORTER_OTLP_LOGS_HEADERS).

    python otlp_client.py schema_records.json       the records of that file
    python otlp_client.py --people P --count C      C numbered $set records, round-robin over P persons
        [--route URL,URL...]                        one exporter per gateway, each person always to the
                                                    same one: what the Collector's loadbalancing exporter
                                                    does with routing by posthog.distinct_id
"""

import argparse
import json
import sys
import zlib

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource


def records(args):
    if args.people:
        for n in range(args.count):
            yield {"event_name": "posthog.set", "attributes": {"posthog.distinct_id": "person_%d" % (n % args.people)},
                   "body": {"n": n}, "time": None}  # fmt: skip
        return
    with open(args.file) as file:
        yield from json.load(file)["records"]


def provider_for(endpoint):
    provider = LoggerProvider(resource=Resource.create({"service.name": "python-otlp-client"}))
    exporter = OTLPLogExporter(endpoint=endpoint) if endpoint else OTLPLogExporter()
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=50))
    return provider


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("file", nargs="?")
    parser.add_argument("--people", type=int)
    parser.add_argument("--count", type=int)
    parser.add_argument("--route")
    args = parser.parse_args(argv)
    endpoints = args.route.split(",") if args.route else [None]
    providers = [provider_for(endpoint) for endpoint in endpoints]
    loggers = [provider.get_logger("otlp-client") for provider in providers]
    for item in records(args):
        person = item["attributes"].get("posthog.distinct_id", "")
        logger = loggers[zlib.crc32(person.encode()) % len(loggers)]
        time = item["time"]
        logger.emit(
            event_name=item["event_name"],
            attributes=item["attributes"],
            body=item["body"],
            timestamp=time[0] * 10**9 + time[1] if time else None,
        )
    for provider in providers:
        provider.shutdown()
    assert "posthog_otel" not in sys.modules  # a service of any language: it knows only OTLP


if __name__ == "__main__":
    main(sys.argv[1:])
