"""A real HTTP server on 127.0.0.1 that records PostHog ingestion requests and injects faults."""

from __future__ import annotations

import gzip
import json
import os
import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Deque, Dict, List


@dataclass
class Fault:
    """What the server does to one request instead of answering 200."""

    status: int = 200
    headers: Dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False  # close the socket without any response
    delay: float = 0.0  # seconds to wait before answering
    body: str = ""
    hold: bool = False  # never answer: keep the request until the server closes (a blackhole)


@dataclass
class Recorded:
    path: str
    headers: Dict[str, str]
    raw: bytes
    answered: int  # status sent, 0 when the connection was dropped

    @property
    def payload(self) -> Any:
        """The decoded JSON body (decoded when asked: a retried 5 MiB batch costs nothing)."""
        if "_payload" not in self.__dict__:
            body = gzip.decompress(self.raw) if self.headers.get("Content-Encoding") == "gzip" else self.raw
            try:
                self.__dict__["_payload"] = json.loads(body)
            except ValueError:
                self.__dict__["_payload"] = None
        return self.__dict__["_payload"]


#: POSTHOG_OTEL_EXAMPLES=4 runs four times the examples of the heaviest property searches (a
#: deeper search: .ci/run does it in a step of its own, the README's quick run does not).
EXAMPLES = float(os.environ.get("POSTHOG_OTEL_EXAMPLES", "1"))


def examples(count: int) -> int:
    return max(1, int(count * EXAMPLES))


class CaptureServer:
    def __init__(self, port: int = 0) -> None:
        self.requests: List[Recorded] = []
        self.faults: Deque[Fault] = deque()
        #: What requests get once ``faults`` is empty: a plain 200, or a schedule (see ``fail_randomly``).
        self.otherwise: Any = lambda: Fault()
        self._released = threading.Event()
        self.held = 0  # requests kept unanswered (Fault(hold=True)) so far
        self.active = 0  # requests being handled right now (a delayed answer among them)
        self.flags: Dict[str, Any] = {}  # what /flags/ answers: {"key": {"enabled": ..., "variant": ...}}
        self._changed = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # the answer's head and body leave at once, not 40 ms apart

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                with server._changed:
                    server.active += 1
                try:
                    self._post()
                finally:
                    with server._changed:
                        server.active -= 1
                        server._changed.notify_all()

            def _post(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                fault = server._next_fault()
                if fault.hold:
                    with server._changed:
                        server.held += 1
                    server._released.wait()
                    self.close_connection = True
                    return
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.drop_connection:
                    server._record(self, raw, 0)
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                recorded = server._record(self, raw, fault.status)
                reply = (fault.body or server._default_reply(self.path, recorded, fault.status)).encode()
                self.send_response(fault.status)
                for name, value in fault.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True)
        self._thread.start()

    def _default_reply(self, path: str, recorded: "Recorded", status: int) -> str:
        if status != 200:
            return '{"error": "injected"}'
        if path.startswith("/flags"):
            return json.dumps({"flags": self.flags, "errorsWhileComputingFlags": False, "requestId": "req-1"})
        if path.startswith("/i/v1/"):  # Capture V1 answers per event
            uuids = [e.get("uuid") for e in (recorded.payload or {}).get("batch", [])]
            return json.dumps({"results": {u: {"result": "ok"} for u in uuids}})
        return '{"status": 1}'

    def close(self) -> None:
        self._released.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def fail_randomly(self, rate: float, fault: Fault, seed: int, delay: float = 0.0) -> None:
        """From now on a seeded ``rate`` of requests get ``fault``; the others 200 (after ``delay``)."""
        chance = random.Random(seed)
        lock = threading.Lock()

        def pick() -> Fault:
            with lock:
                failing = chance.random() < rate
            return fault if failing else Fault(delay=delay)

        self.otherwise = pick

    def _next_fault(self) -> Fault:
        try:
            return self.faults.popleft()
        except IndexError:
            return self.otherwise()

    def _record(self, handler: BaseHTTPRequestHandler, raw: bytes, status: int) -> Recorded:
        recorded = Recorded(handler.path, dict(handler.headers), raw, status)
        if status == 200:
            _ = recorded.payload  # accepted requests are decoded as they arrive: events are read often
        with self._changed:
            self.requests.append(recorded)
            self._changed.notify_all()
        return recorded

    @property
    def accepted(self) -> List[Recorded]:
        return [r for r in self.requests if r.answered == 200]

    @property
    def events(self) -> List[Dict[str, Any]]:
        """Events of accepted requests, in arrival order."""
        return [e for r in self.accepted for e in (r.payload or {}).get("batch", [])]

    def wait_for_events(self, count: int, timeout: float = 10.0) -> List[Dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.events) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
        return self.events

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Until no request is being handled (a delayed one is answered, and recorded)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def by_event(self, name: str) -> List[Dict[str, Any]]:
        return [e for e in self.events if e["event"] == name]

    def reset(self) -> None:
        with self._changed:
            self.requests.clear()
            self.faults.clear()
            self.otherwise = lambda: Fault()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def child_env(**extra: str) -> Dict[str, str]:
    """This process's environment for a child, minus PostHog/OTel/pytest settings, except
    the test's own spool directory (so no test writes to the user's real one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTHOG_", "OTEL_", "PYTEST_"))}
    if "POSTHOG_OTEL_SPOOL_DIR" in os.environ:
        env["POSTHOG_OTEL_SPOOL_DIR"] = os.environ["POSTHOG_OTEL_SPOOL_DIR"]
    env.update(extra)
    return env
