"""A deadline for reading a request body, whatever the server's own timeouts are.

gunicorn's threaded worker reads a body with blocking ``recv`` calls and no deadline: a
peer that sends a byte every few seconds would hold one of the worker's threads for as long
as it likes. Around each body read the app arms a deadline on the connection's socket
(gunicorn passes it as ``environ["gunicorn.socket"]``); one watchdog thread per process
shuts the socket's reading side down when a deadline passes, which ends the blocked read
at once and leaves the writing side open for the answer (408).
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Tuple


class Timer:
    """One armed deadline; ``expired`` once the watchdog cut the connection."""

    __slots__ = ("sock", "at", "done", "expired", "how")

    def __init__(self, sock: Any, at: float, how: int = socket.SHUT_RD) -> None:
        self.sock = sock
        self.at = at
        self.done = False
        self.expired = False
        self.how = how


class Watchdog:
    def __init__(self) -> None:
        self._pid = -1
        self._cond = threading.Condition()
        self._heap: List[Tuple[float, int, Timer]] = []
        self._order = itertools.count()

    @contextmanager
    def deadline(self, sock: Optional[Any], seconds: float) -> Iterator[Timer]:
        """Within the block, ``sock``'s reading side is shut down ``seconds`` from now;
        without a socket (another server) the block runs with the server's own timeouts."""
        timer = self.arm(sock, seconds)
        try:
            yield timer
        finally:
            self.disarm(timer)

    def arm(self, sock: Optional[Any], seconds: float, how: int = socket.SHUT_RD) -> Timer:
        timer = Timer(sock, time.monotonic() + seconds, how)
        if sock is not None:
            self._arm(timer)
        return timer

    def disarm(self, timer: Timer) -> None:
        with self._cond:
            timer.done = True

    def _arm(self, timer: Timer) -> None:
        with self._cond:
            if self._pid != os.getpid():  # first use in this process (a forked worker): our own thread
                self._pid = os.getpid()
                self._heap = []
                threading.Thread(target=self._run, name="posthog-otel-gateway-deadlines", daemon=True).start()
            heapq.heappush(self._heap, (timer.at, next(self._order), timer))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    _, _, timer = heapq.heappop(self._heap)
                    if not timer.done:
                        timer.expired = True
                        _cut(timer.sock, timer.how)
                wait = self._heap[0][0] - now if self._heap else None
                self._cond.wait(wait)


def _cut(sock: Any, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass
