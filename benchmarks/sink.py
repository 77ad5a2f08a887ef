"""A PostHog stand-in for benchmarks, run as its own process so it does not share our GIL.

Listens on 127.0.0.1 (free port, printed on the first line of stdout), reads each request
body, counts the events in /batch/ requests and the bytes read (request line, headers,
body), and answers 200 after ``--delay-ms`` (0: at once).  Stops after --seconds.

Sockets are ``TCP_NODELAY``: the answer goes out in two writes (head, body), and without it
Nagle's algorithm holds the second until the client's delayed ACK, about 40 ms per request on
Linux, a round trip nobody asked for. A round trip is modelled on purpose, with ``--delay-ms``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="wait this long before each answer")
    args = parser.parse_args()
    counts = {"events": 0, "bytes": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self):  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
            try:
                n = len(json.loads(body).get("batch", []))
            except ValueError:
                n = 0
            head = len(self.raw_requestline) + sum(len(k) + len(v) + 4 for k, v in self.headers.items()) + 2
            with lock:
                counts["events"] += n
                counts["bytes"] += head + len(raw)
            reply = b'{"status": 1}'
            if args.delay_ms:
                time.sleep(args.delay_ms / 1000.0)
            self.send_response(200)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def do_GET(self):  # noqa: N802  (GET /count: events received so far)
            with lock:
                reply = json.dumps(counts).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Timer(args.seconds, server.shutdown).start()
    server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
