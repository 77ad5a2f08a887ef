"""A PostHog stand-in that misbehaves on command, for benchmarks/reliability.py.

    python benchmarks/fault_sink.py PORT EVENTS_FILE

Listens on 127.0.0.1:PORT. Every event of an accepted /batch/ request is appended to
EVENTS_FILE as a JSON line with its arrival time (so what arrived survives the sink being
killed and restarted). ``POST /_mode`` switches how it answers:

    ok | 503 | 429 (Retry-After: 2) | drop (closes the connection) | slow (1.5 s, then 200)
    slow:SECONDS | hold (never answers) | flaky:RATE:SEED[:SECONDS] (a seeded RATE of 503s,
    every answer after SECONDS)

Prints ``ready`` when listening. Sockets are ``TCP_NODELAY``, as in ``sink.py``: the answer goes
out in two writes (head, body), and without it Nagle's algorithm and the client's delayed ACK
hold every answer ~40 ms, a round trip nobody asked for (it capped PostHog's SDK, which sends
100 events a request, at about 2,000 a second).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    state = {"mode": "ok", "chance": random.Random(0)}
    lock = threading.Lock()
    held = threading.Event()
    out = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self):  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/_mode":
                state["mode"] = raw.decode()
                if state["mode"].startswith("flaky:"):
                    state["chance"] = random.Random(int(state["mode"].split(":")[2]))
                return self._reply(200, b"{}")
            mode = state["mode"]
            if mode == "hold":
                held.wait()
                return None
            if mode.startswith("flaky:"):
                parts = mode.split(":")
                time.sleep(float(parts[3]) if len(parts) > 3 else 0.0)
                with lock:
                    failing = state["chance"].random() < float(parts[1])
                mode = "503" if failing else "ok"
            if mode.startswith("slow:"):
                time.sleep(float(mode.split(":")[1]))
            if mode == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return None
            if mode == "503":
                return self._reply(503, b'{"error": "unavailable"}')
            if mode == "429":
                return self._reply(429, b'{"error": "slow down"}', {"Retry-After": "2"})
            if mode == "slow":
                time.sleep(1.5)
            body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
            batch = json.loads(body).get("batch", [])
            lines = "".join(
                json.dumps({"uuid": e.get("uuid"), "distinct_id": e.get("distinct_id"),
                            "seq": (e.get("$set") or {}).get("seq"), "at": time.time()}) + "\n"
                for e in batch
            ).encode()  # fmt: skip
            with lock:
                os.write(out, lines)
            return self._reply(200, b'{"status": 1}')

        def _reply(self, status, body, headers=None):
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
