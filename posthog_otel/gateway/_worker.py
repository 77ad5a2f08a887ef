"""gunicorn's threaded worker, reading each request head before a thread is given to it.

gunicorn's ``gthread`` worker hands a connection to one of its threads as soon as it is
readable (gunicorn 23) or accepted (gunicorn 27), and that thread then reads the request
head with blocking reads and no deadline: a client that sends one header line every few
seconds holds a thread for as long as it likes, and a handful of such clients (no key
needed: the head never completes) stop the whole worker.

This worker (``posthog_otel.gateway.Worker``; ``posthog-otel gateway`` uses it) reads heads
in its event loop instead, without blocking, as their bytes come; a connection goes to a
thread only once its head is complete. A head must be complete within ``head_timeout`` of
the connection (of its first byte, for the next request of a kept-alive connection) and
within ``MAX_HEAD_BYTES``: else it is answered 408 or 431 and closed. While every
connection slot (``worker_connections``) is taken, the oldest connection whose head is
still arriving is closed to make room, so slow heads never keep a new client out. A thread
that still reads part of a head itself (the bytes looked complete) is held to the same
deadline. Bodies are read by the threads, within ``read_timeout`` (``_app``).
"""

from __future__ import annotations

import collections
import contextlib
import selectors
import socket
import threading
import time
from functools import partial
from typing import Any, ContextManager, Optional

from gunicorn import http  # type: ignore[import-untyped]
from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

from ._deadline import Watchdog
from ._settings import GatewaySettings

#: Request line and headers: larger is answered 431 (gunicorn's own limits are checked after).
MAX_HEAD_BYTES = 64 * 1024
_END_OF_HEAD = (b"\r\n\r\n", b"\n\n")
_watchdog = Watchdog()
_thread = threading.local()


class Worker(ThreadWorker):
    """``-k posthog_otel.gateway.Worker``: gthread, with request heads read in the event loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Connections whose head is arriving, oldest first, with when it must be complete.
        self._heads: "collections.OrderedDict[Any, float]" = collections.OrderedDict()
        self._head_timeout: Optional[float] = None

    # --- the event loop's side ------------------------------------------------------------------

    def enqueue_req(self, conn: Any) -> None:
        if self.cfg.is_ssl or _head_complete(_buffered(conn), b""):
            super().enqueue_req(conn)  # TLS is unwrapped in the thread; a pipelined head is here already
            return
        conn.posthog_head = bytearray()
        self._heads[conn] = time.monotonic() + self.head_timeout
        conn.sock.setblocking(False)
        with self._locked():
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_bytes, conn))

    def _on_head_bytes(self, conn: Any, _sock: Any) -> None:
        try:
            data = conn.sock.recv(64 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        conn.posthog_head += data
        complete = _head_complete(_buffered(conn), conn.posthog_head)
        if not complete and len(conn.posthog_head) <= MAX_HEAD_BYTES:
            return
        self._forget(conn)
        if not complete:
            self._refuse(conn, 431, "Request Header Fields Too Large")
            return
        _give(self.cfg, conn, bytes(conn.posthog_head))
        super().enqueue_req(conn)

    def murder_keepalived(self, *args: Any, **kwargs: Any) -> None:
        super().murder_keepalived(*args, **kwargs)
        now = time.monotonic()
        while self._heads:
            conn, deadline = next(iter(self._heads.items()))
            if deadline > now and self.nr_conns < self.worker_connections:
                break
            self._forget(conn)  # past its deadline, or the oldest when every slot is taken
            if deadline <= now and conn.posthog_head:
                self._refuse(conn, 408, "Request Timeout")
            else:
                self._close(conn)

    @property
    def head_timeout(self) -> float:
        if self._head_timeout is None:
            settings = getattr(getattr(self, "wsgi", None), "settings", None)
            if not isinstance(settings, GatewaySettings):  # another application: the environment's settings
                settings = GatewaySettings.resolve()
            self._head_timeout = settings.head_timeout
        return self._head_timeout

    def _forget(self, conn: Any) -> None:
        self._heads.pop(conn, None)
        with self._locked():
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass

    def _drop(self, conn: Any) -> None:
        self._forget(conn)
        self._close(conn)

    def _close(self, conn: Any) -> None:
        self.nr_conns -= 1
        conn.close()

    def _refuse(self, conn: Any, status: int, reason: str) -> None:
        """Answer without waiting (what the socket takes now), then close."""
        try:
            conn.sock.send(
                ("HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % (status, reason)).encode()
            )
        except OSError:
            pass
        self._close(conn)

    def _locked(self) -> ContextManager[Any]:
        lock = getattr(self, "_lock", None)  # gunicorn 23 guards its poller: threads register with it too
        return lock if lock is not None else contextlib.nullcontext()

    # --- the threads' side ----------------------------------------------------------------------

    def handle(self, conn: Any) -> Any:
        """A thread reads what is left of the head within the same deadline (it is cut then)."""
        timer = _watchdog.arm(None if self.cfg.is_ssl else conn.sock, self.head_timeout, socket.SHUT_RDWR)
        _thread.head = timer
        try:
            return super().handle(conn)
        finally:
            _watchdog.disarm(timer)

    def handle_request(self, req: Any, conn: Any) -> Any:
        timer = getattr(_thread, "head", None)
        if timer is not None:
            _watchdog.disarm(timer)  # the head is read; the application bounds the body
        return super().handle_request(req, conn)


def _buffered(conn: Any) -> bytes:
    """What gunicorn's parser read ahead on this connection already (a pipelined request)."""
    parser = conn.parser
    unreader = getattr(parser, "unreader", None)
    buf = getattr(unreader, "buf", None)
    return buf.getvalue() if buf is not None else b""


def _head_complete(before: bytes, data: bytes) -> bool:
    joined = before + data if before else data
    return any(end in joined for end in _END_OF_HEAD)


def _give(cfg: Any, conn: Any, data: bytes) -> None:
    """Hand the head's bytes to gunicorn's parser, which reads them before the socket."""
    if conn.parser is None:
        make = getattr(http, "get_parser", None) or http.RequestParser  # gunicorn 27 / 23
        conn.parser = make(cfg, conn.sock, conn.client)
    conn.parser.unreader.unread(data)
    conn.data_ready = True  # gunicorn 27: the thread need not wait for the first byte
