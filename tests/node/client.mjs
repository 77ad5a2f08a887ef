// A Node.js service using the OpenTelemetry JS SDK: @opentelemetry/sdk-logs with the OTLP/HTTP
// (JSON) exporter, configured by the standard environment variables
// (OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, OTEL_EXPORTER_OTLP_LOGS_HEADERS), writing the records of a
// JSON file (tests/apps/schema_records.json). The exporter streams its body: chunked transfer
// encoding, no Content-Length.
import { readFileSync } from "node:fs";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchLogRecordProcessor, LoggerProvider } from "@opentelemetry/sdk-logs";

const { records } = JSON.parse(readFileSync(process.argv[2], "utf8"));
const provider = new LoggerProvider({
  resource: resourceFromAttributes({ "service.name": "node-otlp-client" }),
  processors: [new BatchLogRecordProcessor({ exporter: new OTLPLogExporter(), scheduledDelayMillis: 50 })],
});
const logger = provider.getLogger("node-client");
for (const record of records) {
  logger.emit({
    eventName: record.event_name,
    attributes: record.attributes,
    body: record.body ?? undefined,
    timestamp: record.time ?? undefined,
  });
}
await provider.shutdown();
