"""HTTP serving with bounds: what one peer can cost the local server is limited.

``http.server``'s ``ThreadingHTTPServer`` gives every connection a thread for as long as
the peer keeps it open, reads whatever ``Content-Length`` says (``-1`` means "until the
peer closes"), and waits forever for a request that never comes.  Here instead:

- one thread (``serve_forever``) accepts connections and watches the idle ones with a
  selector, so an idle connection costs a file descriptor, not a thread;
- a connection goes to one of a fixed number of worker threads only once a request
  starts arriving, and comes back to the selector after the response (keep-alive);
- the request head and body must arrive within ``read_timeout`` of the first byte (408),
  the head within ``max_header_bytes`` (431), the body within ``max_body_bytes`` (413),
  with a ``Content-Length`` that is a plain number (400, or 411 when missing);
- at most ``max_connections`` are open: past it the longest-idle one is closed, and a
  connection that waits longer than ``idle_timeout`` for its next request is closed.

Request handlers subclass ``BoundedHandler`` and read the body with ``read_body()``;
``inflate()`` decodes gzip or deflate bodies without ever holding more than its limit.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import re
import selectors
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple, cast

logger = logging.getLogger(__name__)

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one peer may cost; every bound is settable (tests use small ones)."""

    #: Request body as sent (compressed or not); larger is answered 413.
    max_body_bytes: int = 20 * MiB
    #: Request body after gzip/deflate decoding; larger is answered 413.
    max_inflated_bytes: int = 20 * MiB
    #: Request line and headers; larger is answered 431.
    max_header_bytes: int = 64 * 1024
    #: Seconds from a request's first byte until its head and body have arrived; then 408.
    read_timeout: float = 10.0
    #: Seconds a connection may wait for its next request before it is closed.
    idle_timeout: float = 60.0
    #: Open connections; past it the longest-idle one is closed to make room.
    max_connections: int = 128
    #: Requests handled at once (worker threads).
    workers: int = 8


class HTTPError(Exception):
    """Answer ``status`` with ``message``; ``close`` when the stream position is lost."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


class _RequestTimeout(Exception):
    """The request did not arrive within ``read_timeout`` (not a TimeoutError, which
    ``http.server`` would swallow without an answer)."""


class _HeadTooLarge(Exception):
    pass


class _PeerGone(Exception):
    pass


class _Reader:
    """Buffered reads from a socket, each request under one deadline and one head budget.

    It outlives the requests of its connection, so bytes of a pipelined next request stay
    here (``buffered``) rather than being lost with a per-request file object.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._deadline = float("inf")
        self._head_left = 0

    @property
    def buffered(self) -> bool:
        return bool(self._buffer)

    def begin(self, read_timeout: float, head_budget: int) -> None:
        self._deadline = time.monotonic() + read_timeout
        self._head_left = head_budget

    def readline(self, limit: int = -1) -> bytes:
        """Up to and including ``\\n``, at most ``limit`` bytes: the request head only."""
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                size = newline + 1
                break
            if len(self._buffer) > self._head_left:
                raise _HeadTooLarge()
            if 0 <= limit <= len(self._buffer) or not self._fill():
                size = len(self._buffer)
                break
        if limit >= 0:
            size = min(size, limit)
        if size > self._head_left:
            raise _HeadTooLarge()
        self._head_left -= size
        return self._take(size)

    def read(self, size: int) -> bytes:
        """Exactly ``size`` bytes (the body); ``_PeerGone`` if the peer closes first."""
        while len(self._buffer) < size:
            if not self._fill():
                raise _PeerGone()
        return self._take(size)

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _fill(self) -> bool:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise _RequestTimeout()
        self._sock.settimeout(left)
        try:
            data = self._sock.recv(64 * 1024)
        except socket.timeout:
            raise _RequestTimeout() from None
        except OSError:
            raise _PeerGone() from None
        self._buffer += data
        return bool(data)


class _Writer:
    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self._sock = sock
        self._timeout = timeout

    def write(self, data: bytes) -> int:
        self._sock.settimeout(self._timeout)
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass


class _Connection:
    def __init__(self, sock: socket.socket, peer: Any) -> None:
        self.sock = sock
        self.peer = peer
        self.reader = _Reader(sock)


_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")


class BoundedHandler(BaseHTTPRequestHandler):
    """One request of a connection served by ``BoundedHTTPServer``; subclasses add ``do_*``."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        connection: _Connection = self.request
        self._owner = cast("BoundedHTTPServer", self.server)
        self.limits = self._owner.limits
        self.connection = connection.sock
        self.rfile = connection.reader  # type: ignore[assignment]
        self.wfile = _Writer(connection.sock, self.limits.read_timeout)  # type: ignore[assignment]
        self._body_read = False
        self._answered = False
        #: The body was refused unread: linger so the peer, still sending it, reads the answer.
        self.refused_body = False

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()

    def finish(self) -> None:
        pass

    def report(self, status: int, detail: str) -> None:
        """One line about this request for the server's ``on_request``."""
        self._owner.report(self, status, detail)

    def handle_one_request(self) -> None:
        limits = self.limits
        try:
            super().handle_one_request()
        except _RequestTimeout:
            self._fail(408, "the request did not arrive within %g s of its first byte" % limits.read_timeout)
        except _HeadTooLarge:
            self._fail(431, "the request line and headers exceed %d bytes" % limits.max_header_bytes)
        except _PeerGone:
            self.close_connection = True
        except HTTPError as error:
            self._fail(error.status, str(error), close=error.close)
        except Exception:  # a bug of ours: answer, log, keep serving
            logger.exception(
                "posthog-otel local server: internal error on %s %s", getattr(self, "command", "-"), getattr(self, "path", "-")
            )
            self._fail(500, "internal error in the local server (see its log)")
        if not self._body_read and self._declares_body():
            self.close_connection = True  # the unread body would be taken for the next request

    def read_body(self) -> bytes:
        """The request body, as sent; ``HTTPError`` (400/411/413) when it cannot be read safely."""
        self._body_read = True
        self.refused_body = True
        if self.headers.get("Transfer-Encoding") is not None:
            raise HTTPError(411, "send the body with a Content-Length (chunked bodies are not accepted)", close=True)
        values = {value.strip() for value in self.headers.get_all("Content-Length") or ()}
        if not values:
            raise HTTPError(411, "Content-Length is missing", close=True)
        if len(values) > 1:
            raise HTTPError(400, "conflicting Content-Length headers", close=True)
        (text,) = values
        if not _CONTENT_LENGTH.fullmatch(text):
            raise HTTPError(400, "Content-Length %r is not a number of bytes" % text[:40], close=True)
        length, limit = int(text), self.limits.max_body_bytes
        if length > limit:
            raise HTTPError(413, "the body is larger than %s" % _size(limit), close=True)
        self.refused_body = False
        return self.rfile.read(length)

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """``http.server``'s own refusals (bad request line, too many headers) as JSON."""
        self.close_connection = True
        self.reply(code, {"type": "request_error", "error": message or self.responses.get(code, ("",))[0]})

    def reply(self, status: int, body: Dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self._answered = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection and status >= 400:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are reported through the server's ``on_request``

    def _fail(self, status: int, message: str, close: bool = True) -> None:
        self.close_connection = self.close_connection or close
        if self._answered:
            self.close_connection = True
            return
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":  # no request line yet: answer in 1.1
            self.request_version = self.protocol_version
            self.requestline = getattr(self, "requestline", "")
        try:
            self.reply(status, {"type": "request_error", "error": message})
        except OSError:
            self.close_connection = True
        self.report(status, message)

    def _declares_body(self) -> bool:
        headers = getattr(self, "headers", None)
        if headers is None:
            return False
        return headers.get("Transfer-Encoding") is not None or (headers.get("Content-Length") or "0").strip() != "0"


class BoundedHTTPServer:
    """Serves ``handler`` on ``address`` within ``limits``; ``serve_forever`` until ``shutdown``."""

    def __init__(
        self,
        address: Tuple[str, int],
        handler: Callable[..., BoundedHandler],
        limits: Limits,
        on_request: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.limits = limits
        self._handler = handler
        self._on_request = on_request
        self.socket = socket.create_server(address, backlog=128)
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()[:2]
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._selector.register(self.socket, selectors.EVENT_READ)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._ready: "queue.Queue[Optional[_Connection]]" = queue.Queue()
        self._returned: Deque[Tuple[_Connection, bool]] = collections.deque()
        self._idle: "collections.OrderedDict[_Connection, float]" = collections.OrderedDict()
        self._busy: Set[_Connection] = set()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._workers: List[threading.Thread] = []

    # --- the accept and idle loop (one thread) ---------------------------------------------

    def serve_forever(self) -> None:
        self._workers = [
            threading.Thread(target=self._work, name="posthog-otel-local-worker", daemon=True)
            for _ in range(self.limits.workers)
        ]
        for worker in self._workers:
            worker.start()
        try:
            while not self._stopping.is_set():
                try:
                    self._turn(self._until_next_expiry())
                except Exception:  # a bug here must not leave every client waiting on a dead loop
                    logger.exception("posthog-otel local server: the accept loop failed; carrying on")
                    time.sleep(0.05)
        finally:
            self._close_everything()
            self._stopped.set()

    def _turn(self, timeout: Optional[float]) -> None:
        for key, _ in self._selector.select(timeout):
            if key.fileobj is self.socket:
                self._accept()
            elif key.fileobj is self._wake_read:
                self._drain_wakeups()
            elif key.data in self._idle:  # not evicted by an accept earlier in this same batch
                self._dispatch(key.data)
        self._take_back()
        self._expire_idle()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` (from another thread) and wait until it has."""
        self._stopping.set()
        self._wake()
        self._stopped.wait()

    def server_close(self) -> None:
        for sock in (self.socket, self._wake_read, self._wake_write):
            sock.close()
        self._selector.close()

    def report(self, handler: BoundedHandler, status: int, detail: str) -> None:
        if self._on_request is not None:
            command = getattr(handler, "command", None) or "-"
            path = (getattr(handler, "path", None) or "-").split("?", 1)[0]
            self._on_request("%s %s %d %s" % (command, path, status, detail))

    def _accept(self) -> None:
        for _ in range(64):  # a burst at a time; the selector brings us back for more
            try:
                sock, peer = self.socket.accept()
            except BlockingIOError:
                return
            except OSError as error:  # out of file descriptors, say: make room, retry later
                logger.warning("posthog-otel local server: cannot accept a connection (%s)", error)
                if not self._evict_oldest_idle():
                    time.sleep(0.05)
                return
            if len(self._idle) + len(self._busy) >= self.limits.max_connections and not self._evict_oldest_idle():
                sock.close()  # every connection is mid-request: refuse this one
                continue
            sock.setblocking(True)
            connection = _Connection(sock, peer)
            self._selector.register(sock, selectors.EVENT_READ, connection)
            self._idle[connection] = time.monotonic()

    def _dispatch(self, connection: _Connection) -> None:
        self._selector.unregister(connection.sock)
        del self._idle[connection]
        self._busy.add(connection)
        self._ready.put(connection)

    def _take_back(self) -> None:
        while self._returned:
            connection, keep = self._returned.popleft()
            self._busy.discard(connection)
            if not keep or self._stopping.is_set():
                _close(connection.sock)
            elif connection.reader.buffered:  # a pipelined request is already here
                self._busy.add(connection)
                self._ready.put(connection)
            else:
                self._selector.register(connection.sock, selectors.EVENT_READ, connection)
                self._idle[connection] = time.monotonic()

    def _expire_idle(self) -> None:
        now = time.monotonic()
        while self._idle:
            connection, since = next(iter(self._idle.items()))
            if now - since < self.limits.idle_timeout:
                return
            self._evict_oldest_idle()

    def _evict_oldest_idle(self) -> bool:
        if not self._idle:
            return False
        connection, _ = self._idle.popitem(last=False)
        self._selector.unregister(connection.sock)
        _close(connection.sock)
        return True

    def _until_next_expiry(self) -> Optional[float]:
        if not self._idle:
            return None
        oldest = next(iter(self._idle.values()))
        return max(0.0, oldest + self.limits.idle_timeout - time.monotonic())

    def _wake(self) -> None:
        try:
            self._wake_write.send(b"x")
        except OSError:
            pass

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_read.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _close_everything(self) -> None:
        for connection in list(self._idle):
            self._selector.unregister(connection.sock)
            _close(connection.sock)
        self._idle.clear()
        for connection in list(self._busy):  # unblocks a worker waiting on its peer
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _ in self._workers:
            self._ready.put(None)
        for worker in self._workers:
            worker.join(timeout=self.limits.read_timeout + 1)
        for connection in list(self._busy):
            _close(connection.sock)
        self._busy.clear()

    # --- workers ---------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            connection = self._ready.get()
            if connection is None:
                return
            keep = self._serve_one(connection)
            self._returned.append((connection, keep))
            self._wake()

    def _serve_one(self, connection: _Connection) -> bool:
        connection.reader.begin(self.limits.read_timeout, self.limits.max_header_bytes)
        try:
            handler = self._handler(connection, connection.peer, self)
        except Exception:  # BoundedHandler answers its own errors; this is a last resort
            logger.exception("posthog-otel local server: request failed")
            return False
        if handler.close_connection and handler.refused_body:
            _linger(connection.sock, self.limits.read_timeout)
        return not handler.close_connection


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _linger(sock: socket.socket, seconds: float) -> None:
    """Half-close, then discard what the peer still sends (bounded), so that a peer still
    writing a refused body reads our answer instead of a connection reset."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            sock.settimeout(left)
            if not sock.recv(64 * 1024):
                return
    except OSError:
        return


def inflate(raw: bytes, encoding: str, limit: int) -> bytes:
    """``raw`` decoded per its Content-Encoding (gzip is also recognised by its magic bytes),
    never holding more than ``limit`` decoded bytes: ``HTTPError`` 413 past it, 400 when
    the data is not valid, 415 for an encoding this server does not speak."""
    encoding = encoding.strip().lower()
    if encoding == "gzip" or (encoding in ("", "identity") and raw[:2] == b"\x1f\x8b"):
        return _decompress(raw, 31, limit, "gzip")
    if encoding == "deflate":
        return _decompress(raw, 15, limit, "deflate")
    if encoding not in ("", "identity"):
        raise HTTPError(415, "Content-Encoding %r is not supported (gzip or deflate)" % encoding[:40])
    if len(raw) > limit:
        raise HTTPError(413, "the body is larger than %s" % _size(limit))
    return raw


def _decompress(data: bytes, wbits: int, limit: int, name: str) -> bytes:
    """Inflate in steps of at most the room left, so a bomb stops at ``limit + 1`` bytes."""
    out = bytearray()
    try:
        while True:  # gzip allows several members back to back
            inflater = zlib.decompressobj(wbits)
            pending = data
            while not inflater.eof:
                chunk = inflater.decompress(pending, limit + 1 - len(out))
                out += chunk
                if len(out) > limit:
                    raise HTTPError(413, "the body inflates to more than %s" % _size(limit))
                pending = inflater.unconsumed_tail
                if not chunk and not pending:
                    raise HTTPError(400, "the body is not valid %s (truncated)" % name)
            data = inflater.unused_data
            if not data or wbits != 31:
                break
    except zlib.error:
        raise HTTPError(400, "the body is not valid %s" % name) from None
    if data:
        raise HTTPError(400, "the body is not valid %s (trailing data)" % name)
    return bytes(out)


def _size(n: int) -> str:
    return "%d MiB" % (n // MiB) if n >= MiB and n % MiB == 0 else "%d bytes" % n
