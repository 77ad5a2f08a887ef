"""The gateway under test: in this process behind a real HTTP server on 127.0.0.1, or as
``posthog-otel gateway`` (gunicorn) in a child process; and OTLP requests built with the
official protobuf classes."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from socketserver import ThreadingMixIn
from typing import Any, Dict, List, Optional, Sequence
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

pytest.importorskip("opentelemetry.proto.collector.logs.v1.logs_service_pb2")
pytest.importorskip("gunicorn")

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest  # noqa: E402
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord  # noqa: E402

from .support import child_env  # noqa: E402

KEY = "phc_gatewaytest0123456789abcdefghijklmnop"
OTHER_KEY = "phc_othergateway0123456789abcdefghijklmn"


# --- OTLP requests ---------------------------------------------------------------------------


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(KeyValue(key=k, value=any_value(v)) for k, v in value.items())
        return out
    if isinstance(value, list):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    if value is None:
        return AnyValue()
    raise TypeError(value)


def record(
    event_name: str = "", attributes: Optional[Dict[str, Any]] = None, body: Any = None, **fields: Any
) -> LogRecord:
    out = LogRecord(event_name=event_name, **fields)
    out.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in (attributes or {}).items())
    if body is not None:
        out.body.CopyFrom(any_value(body))
    return out


def request(records: Sequence[LogRecord], resource: Optional[Dict[str, Any]] = None) -> ExportLogsServiceRequest:
    out = ExportLogsServiceRequest()
    resource_logs = out.resource_logs.add()
    resource_logs.resource.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in (resource or {}).items())
    resource_logs.scope_logs.add().log_records.extend(records)
    return out


def set_record(distinct_id: str, properties: Dict[str, Any], **fields: Any) -> LogRecord:
    return record("posthog.set", {"posthog.distinct_id": distinct_id}, properties, **fields)


def protobuf_headers(key: Optional[str] = KEY) -> Dict[str, str]:
    headers = {"Content-Type": "application/x-protobuf"}
    if key:
        headers["Authorization"] = "Bearer " + key
    return headers


# --- the gateway in this process --------------------------------------------------------------


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class InProcess:
    """A Gateway behind wsgiref on 127.0.0.1 (port 0): a real HTTP exchange, in this process."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_Quiet)
        self.url = "http://127.0.0.1:%d" % self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.app.close(2.0)


# --- the command ------------------------------------------------------------------------------


class GatewayProcess:
    """``posthog-otel gateway`` on 127.0.0.1, port 0 (gunicorn picks it; the command prints it)."""

    def __init__(
        self, posthog_url: str, spool_dir: str, workers: int = 1, args: Sequence[str] = (), **env: str
    ) -> None:
        environment = child_env(POSTHOG_HOST=posthog_url, POSTHOG_OTEL_SPOOL_DIR=spool_dir, **env)
        command = [sys.executable, "-m", "posthog_otel.cli", "gateway", "--bind", "127.0.0.1:0",
                   "--workers", str(workers), *args]  # fmt: skip
        self.process = subprocess.Popen(
            command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.banner: List[str] = []
        line = self.process.stdout.readline() if self.process.stdout else ""
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)/v1/logs", line)
        if not match:
            self.process.kill()
            raise AssertionError("the gateway did not start: %r %s" % (line, self.process.communicate(timeout=10)[1]))
        self.url = match.group(1)
        for _ in range(3):  # accepts / key / delivers to
            self.banner.append(self.process.stdout.readline() if self.process.stdout else "")
        self._stderr: List[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for the command to end; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._reader.join(5)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # gunicorn's workers notice their master is gone and end
            self.process.wait(10)
