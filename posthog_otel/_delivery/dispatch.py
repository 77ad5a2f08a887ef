"""The exporter's own threads: batches in from the SDK, PostHog events out, in order.

``export()`` runs on the SDK's worker, which must keep up with the application or its queue
drops records: it only appends the batch to a bounded hand-off and returns. Two daemon
threads per exporter do the rest:

- the **dispatcher thread** maps records to PostHog events, encodes them, keeps them in
  order (in memory, or in the spool), decides what to send next, when to back off and when
  to spill to disk. It never touches the network, so a PostHog that hangs cannot stop it;
- the **HTTP thread** makes one request at a time and hands the answer back.

::

    hand-off ──map, encode──> memory ──> shipment ──HTTP──> PostHog
                                │          │  retryable: back off, then the same again
                  older than spool_after, or over the memory cap: spilled (the shipment too)
                                ▼          │
                              spool ──> the oldest batches, up to one request (5 MiB)

**Order.** One shipment is in flight at a time. Whenever the spool holds anything (ours, a
sibling process's, or a dead process's), new batches go behind it, so a later ``$set`` never
overtakes an earlier one. **Loss.** An event lives only in memory for at most
``spool_after`` (1 s) after the exporter got it; a SIGKILL loses at most that plus the SDK's
schedule delay. Every drop is counted by reason.

This module is the callers' side (``hand_off``, the flushes, ``finish``, ``shutdown``, fork);
each job has its own module: ``_handoff`` (what is handed in, encoding), ``_board`` (what the
threads share, under one lock), ``_loop`` (the dispatcher thread), ``_line`` and ``_memory``
(memory, then the spool), ``_spool_access``, ``_schedule`` (the shipment in flight),
``_sender`` (the HTTP thread) and ``_exit`` (the exit protocol).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, Optional

from .. import _emitter, _lifecycle, _sigterm
from .._config import Settings, redact
from .._hooks import Hooks
from .._log import logger, warn_limited
from .._mapping import Defaults
from .._stats import Stats, register_metrics
from .._system import system_properties
from .._version import __version__
from . import exit as _exit
from .board import Board
from .exit import Finish
from .handoff import Batch, Encoder, MappedEvents, Read, count_losses, count_never_exported, count_refused
from .http import HttpTransport, Transport
from .line import said
from .loop import DispatchLoop
from .memory import MEMORY_MAX_BYTES
from .protocol import policy_for
from .retry import RetryPolicy
from .sequence import SequenceTracker
from .spool_access import SpoolAccess, open_spool

__all__ = ["Dispatcher", "MappedEvents", "MEMORY_MAX_BYTES", "Read"]

LIBRARY = "posthog-otel"


def _defaults(settings: Settings) -> Defaults:
    """What every event of this exporter carries unless the operation says otherwise."""
    library = {"$lib": LIBRARY, "$lib_version": __version__, **({"$is_server": True} if settings.is_server else {})}
    return Defaults(
        library=library,
        system=system_properties(),
        disable_geoip=settings.disable_geoip,
        trace_context=settings.trace_context,
    )


class Dispatcher:
    """``hand_off(batch)`` from the SDK's worker; everything else on its own threads."""

    def __init__(
        self,
        settings: Settings,
        kind: str,
        read: Read,
        retry_policy: Optional[RetryPolicy] = None,
        transport: Optional[Transport] = None,
        hooks: Optional[Hooks] = None,
        emitter: Any = None,
    ) -> None:
        self.settings = settings
        self.kind = kind  # "logs" or "traces": which SDK provider feeds it
        #: super_properties, before_send, on_error: applied to events before they are encoded.
        self.hooks = hooks if hooks is not None else Hooks(is_server=settings.is_server)
        #: Whose records these are (their sequence numbers): the module's operations, or a Client's.
        self._emitter = emitter if emitter is not None else _emitter.emitter
        self._encoder = Encoder(read, _defaults(settings), self.hooks)
        spool = open_spool(settings)
        self._stats = Stats(spool, self._gauges, getattr(self._emitter, "drops", None))
        self._spool = SpoolAccess(spool, self._stats)
        self._tracker = SequenceTracker(self._checkpoint(), getattr(self._emitter, "unused", frozenset()))
        self._transport: Transport = transport if transport is not None else HttpTransport()
        policy = policy_for(settings.capture_mode, retry_policy or RetryPolicy(max_attempts=settings.max_attempts))
        # Shared with the callers and the HTTP thread (under its condition):
        self._board = Board()
        # The dispatcher thread's own state, and its threads:
        self._loop = DispatchLoop(
            settings, self._board, self._encoder, self._tracker, self._spool, self._stats, policy, self._transport,
            self.hooks,
        )  # fmt: skip
        self._pid = os.getpid()
        register_metrics(self._stats)
        _lifecycle.register(self)
        if settings.handle_sigterm:
            _sigterm.install()
        if self._spool.pending():
            self._loop.ensure_threads()  # batches left by an earlier process: send them now

    def __repr__(self) -> str:
        return "Dispatcher(host=%r, api_key=%r)" % (self.settings.host, redact(self.settings.api_key))

    # --- called from other threads ------------------------------------------------------

    def hand_off(self, batch: Batch) -> bool:
        """Take a batch from the SDK's worker and return at once; False once shut down."""
        if self._pid != os.getpid():
            self.after_fork()
        now = time.monotonic()
        board = self._board
        with board.cond:
            refused = board.closed
            queued = not refused and board.handoff.put(now, batch)
            if not refused:
                board.accepted += 1
        if refused:
            count_refused(batch.refused(self._encoder, self._tracker))
            return False
        if not queued:  # the thread is behind: encode here (costs this thread time, loses nothing)
            encoded = batch.encoded(self._encoder)
            with board.cond:
                board.handoff.put_encoded(now, encoded)
        with board.cond:
            board.quiet = board.safe = False
            board.cond.notify_all()
        self._loop.ensure_threads()
        if self._loop.inline:
            self._loop.run_inline(time.monotonic() + _exit.EXIT_STALL)
        return True

    def wait_safe(self, timeout: float) -> bool:
        """Wait until everything handed off so far is delivered or in the spool: what a
        ``force_flush`` of the SDK's processor (which never asks the exporter) should mean."""
        deadline = time.monotonic() + timeout
        board = self._board
        with board.cond:
            target = board.accepted
            while not (board.absorbed >= target and board.safe):
                left = deadline - time.monotonic()
                if left <= 0 or not self._loop.threads_alive():
                    return False
                if board.absorbed >= target and self._parked_why(deadline) is not None:
                    break  # no wait helps: spooled below, at once
                board.cond.wait(min(left, 0.5))
            if board.safe:
                return True
        self.finish(0.0, stop=False)  # spool it now
        with board.cond:
            return board.safe

    def force_flush(self, timeout_millis: float = 30000) -> bool:
        """Wait until everything handed off so far, and the spool's backlog, is delivered (or
        dropped, counted): True. Returns False as soon as what is left waits on something no
        wait within the timeout fixes (a refused key, a retry due later), or at the timeout,
        with a warning saying what waits and why."""
        deadline = time.monotonic() + max(timeout_millis, 0) / 1000
        board = self._board
        with board.cond:
            target = board.accepted
        if target == 0 and not self._spool.pending():
            return True
        with board.cond:
            board.looks_asked += 1  # look at the spool now: batches there count as waiting
            asked = board.looks_asked
            board.cond.notify_all()
        self._loop.ensure_threads()
        if self._loop.inline:
            self._loop.run_inline(deadline)
        why = None
        with board.cond:
            while not (board.absorbed >= target and board.looks_done >= asked and board.quiet):
                left = deadline - time.monotonic()
                if left <= 0 or board.closed and board.finish is None and not self._loop.threads_alive():
                    why = "no answer from PostHog in time (%s)" % self._waiting_for() if left <= 0 else "shut down"
                    break
                if board.absorbed >= target and board.looks_done >= asked:
                    why = self._parked_why(deadline)
                    if why is not None:
                        break
                board.cond.wait(min(left, 0.5))
            safe = board.safe
        count_losses(self._tracker.settle())
        if why is None:
            return True
        if not safe:
            self.finish(0.0, stop=False)  # what memory holds goes to the spool now
        self._report_unflushed(why)
        return False

    def finish(self, budget: float, stop: bool) -> None:
        """Deliver what is pending while PostHog answers promptly, spool the rest; with ``stop``
        the threads end afterwards (exit). Returns within ``budget`` seconds or so."""
        request = Finish.within(min(max(budget, 0.0), self.settings.exit_timeout), stop)
        board = self._board
        with board.cond:
            if board.finish is not None and not board.finish.done.is_set():
                request = board.finish
                request.stop = request.stop or stop
            else:
                board.finish = request
            board.cond.notify_all()
        self._loop.ensure_threads()
        if self._loop.inline:
            self._loop.run_inline(request.deadline)
        else:
            request.done.wait(max(request.deadline - time.monotonic(), 0.0) + 0.5)

    def shutdown(self, timeout_millis: float = 5000, mark: Optional[int] = None) -> None:
        """Stop taking batches; deliver what is pending while PostHog answers promptly (within
        the timeout), spool the rest; then close and log a summary if anything was dropped.

        ``mark`` (from the emitter, at its last exporter's shutdown): records numbered below
        it that never arrived are counted here, as made too late to be exported."""
        board = self._board
        with board.cond:
            if board.closed:
                return
            board.closed = True
            pending = bool(board.handoff) or board.holding
        if pending or self._loop.threads_alive():
            self.finish(max(timeout_millis, 0) / 1000, stop=True)
        gaps, never = self._tracker.close(mark)
        count_losses(gaps)
        count_never_exported(never)
        _lifecycle.unregister(self)
        with board.cond:
            in_flight = board.in_flight
        if not in_flight:
            self._transport.close()
        self._summarise()

    def remove_spool_if_empty(self) -> bool:
        """After ``shutdown``: remove this key's spool directory if nothing waits there (a
        gateway's project closed for good); a later process with the key makes it again."""
        return self._spool.spool is not None and self._spool.spool.remove_if_empty()

    def stats(self) -> Dict[str, Any]:
        """Events exported, request retries, events spooled and drained, drops by reason,
        what waits in memory and in the spool."""
        return self._stats.snapshot()

    def after_fork(self) -> None:
        """In a forked child: new locks, no threads, and none of the parent's backlog (the
        parent delivers it)."""
        self._pid = os.getpid()
        self._board.after_fork()
        self._loop.after_fork()
        self._stats.after_fork()
        if self._spool.spool is not None:
            self._spool.spool.after_fork()
        self._tracker.after_fork(self._checkpoint())
        after_fork: Optional[Callable[[], None]] = getattr(self._transport, "after_fork", None)
        if after_fork is not None:
            after_fork()

    def _parked_why(self, deadline: float) -> Optional[str]:
        """Why what is left cannot leave before ``deadline`` whatever we wait (under the lock)."""
        board = self._board
        if board.quiet or board.in_flight:
            return None
        if board.parked is not None:
            return board.parked
        if board.send_at <= deadline:
            return None
        return "the next attempt is due in %.3g s (%s)" % (board.send_at - time.monotonic(), self._waiting_for())

    def _waiting_for(self) -> str:
        return said(self._board.verdict, self.settings.api_key)

    def _report_unflushed(self, why: str) -> None:
        stats = self._stats.snapshot()
        warn_limited(
            "unflushed:" + why.split(" (")[0],
            "posthog_otel: flush: %d event(s) in memory and %d batch(es) in the spool %s still wait: %s",
            stats["memory_events"], stats["spool_batches"], self._spool, why,
        )  # fmt: skip

    def _checkpoint(self) -> int:
        """Where this exporter starts judging sequence numbers (only log records carry them)."""
        return int(self._emitter.checkpoint()) if self.kind == "logs" else 0

    def _gauges(self) -> Dict[str, int]:
        memory = self._loop.line.memory
        return {"memory_events": memory.events, "memory_bytes": memory.bytes,
                "handoff_records": self._board.handoff.records}  # fmt: skip

    def _summarise(self) -> None:
        stats = self._stats.snapshot()
        dropped = stats["dropped"]
        if dropped:
            logger.warning(
                "posthog_otel: %d event(s) exported; dropped: %s",
                stats["exported"], ", ".join("%s=%d" % kv for kv in sorted(dropped.items())),
            )  # fmt: skip
        if stats["spool_batches"]:
            logger.warning(
                "posthog_otel: %d batch(es) wait in the spool %s; the next process with the same key and host "
                "sends them", stats["spool_batches"], self._spool,
            )  # fmt: skip
