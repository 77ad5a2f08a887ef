"""OTLP/HTTP answers, in the encoding the request came in.

Success is an ``ExportLogsServiceResponse``, with ``partial_success`` only when records were
refused (its count and a message saying why). Failures carry a ``google.rpc.Status``, the
body OTLP/HTTP specifies for them; its two fields are encoded here by hand (protobuf's wire
format for a varint and a string) so the gateway needs no googleapis package.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Dict, List, Optional, Tuple

from .._mapping import Skipped

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

#: ``google.rpc.Code`` for each HTTP status the gateway answers with.
_RPC_CODES: Dict[int, int] = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 12,  # UNIMPLEMENTED
    405: 12,
    408: 4,  # DEADLINE_EXCEEDED
    411: 3,
    413: 8,  # RESOURCE_EXHAUSTED
    415: 3,
    500: 13,  # INTERNAL
    503: 14,  # UNAVAILABLE
}

Answer = Tuple[int, List[Tuple[str, str]], bytes]


def success(encoding: str, skipped: List[Skipped]) -> Answer:
    message = refusal_message(skipped) if skipped else ""
    if encoding == "protobuf":
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

        response = ExportLogsServiceResponse()
        if skipped:
            response.partial_success.rejected_log_records = len(skipped)
            response.partial_success.error_message = message
        return 200, [("Content-Type", PROTOBUF)], response.SerializeToString()
    document = {"partialSuccess": {"rejectedLogRecords": str(len(skipped)), "errorMessage": message}} if skipped else {}
    return 200, [("Content-Type", JSON)], json.dumps(document).encode("utf-8")


def failure(encoding: str, status: int, message: str, retry_after: Optional[int] = None, close: bool = False) -> Answer:
    code = _RPC_CODES.get(status, 2)  # UNKNOWN
    if encoding == "protobuf":
        body, content_type = _status_protobuf(code, message), PROTOBUF
    else:
        body, content_type = json.dumps({"code": code, "message": message}).encode("utf-8"), JSON
    headers = [("Content-Type", content_type)]
    if retry_after is not None:
        headers.append(("Retry-After", str(retry_after)))
    if close:
        headers.append(("Connection", "close"))
    return status, headers, body


def refusal_message(skipped: List[Skipped]) -> str:
    """``2 record(s) refused: no_distinct_id x2 (posthog.set without a distinct id)``: each
    reason with its count and the first record's problem."""
    counts = Counter(problem.reason for problem in skipped)
    first: Dict[str, str] = {}
    for problem in skipped:
        first.setdefault(problem.reason, str(problem))
    parts = ["%s x%d (%s)" % (reason, n, first[reason]) for reason, n in counts.most_common()]
    return "%d record(s) refused: %s" % (len(skipped), "; ".join(parts))


def _status_protobuf(code: int, message: str) -> bytes:
    text = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
