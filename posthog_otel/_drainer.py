"""Sends the spool's batches, oldest first, when PostHog answers again.

A daemon thread tries on a timer (1 s, doubling to 10 s while PostHog keeps failing,
60 s while it refuses the key) and whenever an export adds to the spool. ``drain`` can
also run on the caller's thread (``force_flush``, shutdown); a lock keeps it to one
drain at a time per process, and the spool's claim keeps it to one sender across
processes. Each batch gets one attempt per try: the backoff lives here, not in a second
retry loop underneath.
"""

from __future__ import annotations

import enum
import os
import threading
import time
from typing import Any, Optional

from ._client import PostHogClient, deadline_after
from ._log import logger
from ._retry import RetryPolicy

ONE_ATTEMPT = RetryPolicy(max_attempts=1)
FIRST_INTERVAL = 1.0
MAX_INTERVAL = 10.0
UNAUTHORIZED_INTERVAL = 60.0


class Drained(enum.Enum):
    EMPTY = "empty"  # nothing left
    BUSY = "busy"  # another process is sending the oldest batch
    FAILED = "failed"  # PostHog did not take it; try later
    UNAUTHORIZED = "unauthorized"


class Drainer:
    def __init__(self, spool: Any, client: PostHogClient, timeout: float, stats: Any) -> None:
        self.spool = spool
        self._client = client
        self._timeout = timeout
        self._stats = stats
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._pid = 0
        self._interval = FIRST_INTERVAL
        self._next_try = 0.0

    def poke(self) -> None:
        """Make sure the thread runs (in this process: a forked child starts its own) and wake it."""
        if self._stopped.is_set():
            return
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._pid = os.getpid()
            self._lock = threading.Lock()  # a lock held in the parent at fork time stays held
            self._thread = threading.Thread(target=self._run, name="posthog-otel-spool", daemon=True)
            self._thread.start()
        self._wake.set()

    def drain(self, deadline: Optional[float] = None) -> Drained:
        """Send batches oldest first until the spool is empty or one does not go through."""
        deadline = deadline if deadline is not None else deadline_after(self._timeout)
        with self._lock:
            while True:
                claim = self.spool.claim_oldest()
                if claim is None:
                    return Drained.BUSY if self.spool.pending() else Drained.EMPTY
                report = self._client.send(claim.events, deadline, policy=ONE_ATTEMPT)
                self._stats.add("exported", report.delivered)
                self._stats.add("drained", report.delivered)
                if report.unsent:
                    claim.release(report.unsent)
                    return Drained.UNAUTHORIZED if report.unauthorized else Drained.FAILED
                claim.done()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and self._pid == os.getpid():
            thread.join(timeout=self._timeout + 1)

    def _run(self) -> None:
        while not self._stopped.is_set():
            wait = max(self._next_try - time.monotonic(), 0.0) if self._next_try else MAX_INTERVAL
            self._wake.wait(wait)
            self._wake.clear()
            if self._stopped.is_set() or time.monotonic() < self._next_try:
                continue
            try:
                result = self.drain()
            except Exception:  # never let the thread die: log and try again later
                logger.exception("posthog_otel: error while sending the spool")
                result = Drained.FAILED
            if result is Drained.EMPTY:
                self._interval, self._next_try = FIRST_INTERVAL, 0.0
            else:
                if result is Drained.UNAUTHORIZED:
                    self._interval = UNAUTHORIZED_INTERVAL
                elif result is Drained.FAILED:
                    self._interval = min(self._interval * 2, MAX_INTERVAL)
                else:
                    self._interval = FIRST_INTERVAL
                self._next_try = time.monotonic() + self._interval
