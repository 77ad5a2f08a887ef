"""HTTP serving with bounds: what one peer can cost the local server is limited.

``http.server``'s ``ThreadingHTTPServer`` gives every connection a thread for as long as
the peer keeps it open, reads whatever ``Content-Length`` says (``-1`` means "until the
peer closes"), and waits forever for a request that never comes.  Here instead:

- one thread (``serve_forever``) accepts connections and watches the idle ones with a
  selector, so an idle connection costs a file descriptor, not a thread;
- the request head is read by that same thread, without blocking, as its bytes come: a
  connection goes to one of a fixed number of worker threads only once its whole head is
  here (a peer that sends its head a byte at a time holds no thread), and comes back to
  the selector after the response (keep-alive);
- the request head and body must arrive within ``read_timeout`` of the first byte (408),
  the head within ``max_header_bytes`` (431), the body within ``max_body_bytes`` (413),
  with a ``Content-Length`` that is a plain number (400, or 411 when missing);
- at most ``max_connections`` are open: past it the longest-idle one is closed (then the
  oldest with a head still arriving), and a connection that waits longer than
  ``idle_timeout`` for its next request is closed.

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
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple, cast

from .._inflate import HTTPError, inflate
from .._inflate import size_text as _size

__all__ = ["BoundedHTTPServer", "BoundedHandler", "HTTPError", "Limits", "inflate"]

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

    def head_complete(self, limit: int) -> bool:
        """The buffer holds a whole request head (or more than ``limit`` bytes of one,
        which the handler refuses at once)."""
        return b"\r\n\r\n" in self._buffer or b"\n\n" in self._buffer or len(self._buffer) > limit

    def take_available(self) -> bool:
        """What the peer has sent so far, without waiting; False once the peer is gone."""
        try:
            self._sock.settimeout(0.0)
            data = self._sock.recv(64 * 1024)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        self._buffer += data
        return bool(data)

    def begin(self, deadline: float, head_budget: int) -> None:
        self._deadline = deadline
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
        #: When the first byte of the request being read arrived (its deadline runs from it).
        self.started = 0.0


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
                "posthog-otel local server: internal error on %s %s",
                getattr(self, "command", "-"),
                getattr(self, "path", "-"),
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
        #: Connections whose request head is arriving: when it must be complete (408 then).
        self._heads: "collections.OrderedDict[_Connection, float]" = collections.OrderedDict()
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
            elif key.data in self._idle or key.data in self._heads:  # not evicted earlier in this batch
                self._read_head(key.data)
        self._take_back()
        self._expire_idle()
        self._expire_heads()

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
            if self._open_count() >= self.limits.max_connections and not self._evict_oldest_idle():
                sock.close()  # every connection is mid-request: refuse this one
                continue
            sock.setblocking(True)
            # An answer is two writes (head, body): without this the body waits for the
            # client's delayed ACK of the head, 40 ms on Linux, on every kept-alive request.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(sock, peer)
            self._selector.register(sock, selectors.EVENT_READ, connection)
            self._idle[connection] = time.monotonic()

    def _open_count(self) -> int:
        return len(self._idle) + len(self._heads) + len(self._busy)

    def _read_head(self, connection: _Connection) -> None:
        """Bytes of a request head: to a worker once the head is whole; kept watching if not."""
        reader = connection.reader
        if not reader.take_available():
            self._forget(connection)
            _close(connection.sock)
            return
        if not reader.buffered:
            return
        if connection in self._idle:
            del self._idle[connection]
            connection.started = time.monotonic()
            self._heads[connection] = connection.started + self.limits.read_timeout
        if reader.head_complete(self.limits.max_header_bytes):
            self._dispatch(connection)

    def _forget(self, connection: _Connection) -> None:
        self._selector.unregister(connection.sock)
        self._idle.pop(connection, None)
        self._heads.pop(connection, None)

    def _dispatch(self, connection: _Connection) -> None:
        self._forget(connection)
        self._busy.add(connection)
        self._ready.put(connection)

    def _take_back(self) -> None:
        while self._returned:
            connection, keep = self._returned.popleft()
            self._busy.discard(connection)
            if not keep or self._stopping.is_set():
                _close(connection.sock)
            elif connection.reader.buffered:  # a pipelined request is (partly) here already
                connection.started = time.monotonic()
                if connection.reader.head_complete(self.limits.max_header_bytes):
                    self._busy.add(connection)
                    self._ready.put(connection)
                else:
                    self._selector.register(connection.sock, selectors.EVENT_READ, connection)
                    self._heads[connection] = connection.started + self.limits.read_timeout
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

    def _expire_heads(self) -> None:
        now = time.monotonic()
        while self._heads:
            connection, deadline = next(iter(self._heads.items()))
            if now < deadline:
                return
            self._forget(connection)
            message = "the request did not arrive within %g s of its first byte" % self.limits.read_timeout
            _refuse_unread(connection.sock, 408, message)
            if self._on_request is not None:
                self._on_request("- - 408 %s" % message)

    def _evict_oldest_idle(self) -> bool:
        """Close the longest-idle connection, else the oldest whose head is still arriving."""
        table = self._idle or self._heads
        if not table:
            return False
        connection = next(iter(table))
        self._forget(connection)
        _close(connection.sock)
        return True

    def _until_next_expiry(self) -> Optional[float]:
        now = time.monotonic()
        waits = []
        if self._idle:
            waits.append(next(iter(self._idle.values())) + self.limits.idle_timeout - now)
        if self._heads:
            waits.append(next(iter(self._heads.values())) - now)
        return max(0.0, min(waits)) if waits else None

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
        for connection in [*self._idle, *self._heads]:
            self._forget(connection)
            _close(connection.sock)
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
        started = connection.started or time.monotonic()
        connection.started = 0.0
        connection.reader.begin(started + self.limits.read_timeout, self.limits.max_header_bytes)
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


def _refuse_unread(sock: socket.socket, status: int, message: str) -> None:
    """Answer a request the selector thread gave up on (no worker has it), without waiting:
    what the socket takes now is sent, then it is closed."""
    body = json.dumps({"type": "request_error", "error": message}).encode("utf-8")
    reason = BaseHTTPRequestHandler.responses.get(status, ("",))[0]
    head = "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (
        status,
        reason,
        len(body),
    )
    try:
        sock.settimeout(0.0)
        sock.send(head.encode("ascii") + body)
    except OSError:
        pass
    _close(sock)


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
