"""The dispatcher thread's loop, and the two threads it runs on.

Each turn takes what the board holds (new batches, the HTTP thread's answer, an exit
request), then does one ``_step``: encode and queue the batches, settle the answer, look at
the spool, spill what is due, bound memory, step the exit, and post the next request if one
is due. At the end of the turn it publishes on the board what the other threads may know.
Where no thread can start (interpreter shutdown), ``run_inline`` does the same on the
caller's thread, requests included.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import List, Optional, Tuple

from .. import _log, _state
from .._config import Settings
from .._hooks import Hooks
from .._log import count_drop, logger, warn_limited
from .._sigterm import leave_signals_to_the_main_thread
from .._stats import Stats
from . import exit as _exit
from .board import Board
from .client import Shipment
from .exit import ExitProtocol, Finish
from .handoff import Arrival, Encoder, count_losses
from .http import Transport
from .line import Line
from .retry import RetryPolicy, Verdict
from .schedule import Schedule
from .sender import HttpWorker
from .sequence import SequenceTracker
from .spool_access import SpoolAccess

#: Seconds the dispatcher pauses after an internal error (a bug), so that one that repeats
#: costs a log line a minute and a count, not a core.
INTERNAL_ERROR_PAUSE = 0.5


class DispatchLoop:
    def __init__(
        self, settings: Settings, board: Board, encoder: Encoder, tracker: SequenceTracker, spool: SpoolAccess,
        stats: Stats, policy: RetryPolicy, transport: Transport, hooks: Hooks,
    ) -> None:  # fmt: skip
        self.settings = settings
        self._board = board
        self._encoder = encoder
        self._tracker = tracker
        self._spool = spool
        self._stats = stats
        self.line = Line(settings, spool)
        self._schedule = Schedule(settings, policy, transport, hooks, spool, stats)
        self._exit = ExitProtocol(settings, self.line, self._schedule, spool, self._complete)
        self._worker = HttpWorker(board)
        self._threads: List[threading.Thread] = []
        self.inline = False  # threads could not start (interpreter shutdown): work on the caller's

    def after_fork(self) -> None:
        """In a forked child: no threads, and none of the parent's backlog."""
        self.line.memory.clear()
        self._schedule.after_fork()
        self._spool.first = False
        self._threads = []
        self.inline = False

    def _run(self) -> None:
        leave_signals_to_the_main_thread()
        _log.attribute_drops_to(self._stats.drops)  # what this thread drops is this exporter's
        board = self._board
        while True:
            with board.cond:
                now = time.monotonic()
                wake = self._wake_at(now)
                while not (board.handoff or board.answer or wake <= now or board.looks_asked > board.looks_done):
                    board.cond.wait(wake - now)
                    now = time.monotonic()
                    wake = self._wake_at(now)
                taken = board.handoff.take()
                answer, board.answer = board.answer, None
                finish = board.finish
                looks = board.looks_asked
                if looks > board.looks_done:
                    self._spool.next_poll = 0.0
            try:
                self._step(taken, answer, finish)
            except Exception:  # never let the thread die: say it, count it, carry on
                count_drop("internal_error")
                warn_limited("dispatch_internal", "posthog_otel: internal error in the exporter", level=logging.ERROR)
                logger.debug("internal error in the exporter", exc_info=True)
                if _state.raise_internal_errors:
                    raise
                time.sleep(INTERNAL_ERROR_PAUSE)  # a fault that repeats must not spin a core
            with board.cond:
                board.absorbed += len(taken)
                self._publish()
                board.looks_done = looks
                board.cond.notify_all()
                if finish is not None and finish.done.is_set() and finish.stop:
                    return

    def _http_run(self) -> None:
        leave_signals_to_the_main_thread()
        _log.attribute_drops_to(self._stats.drops)
        self._worker.run()

    def _step(
        self, taken: List[Tuple[float, Arrival]], answer: Optional[Tuple[Shipment, Verdict]], finish: Optional[Finish]
    ) -> None:
        arrived = []
        for born, item in taken:
            encoded = item.encoded(self._encoder)
            count_losses(self._tracker.saw(encoded.numbers))  # in hand-off order: late is not lost
            arrived.extend(self.line.arrivals(encoded.batch, born))
        if arrived:
            self.line.enqueue(arrived)
        now = time.monotonic()
        if answer is not None:
            self._settle(answer[0], answer[1], finish, now)
        self._spool.poll(now)
        shipment = self._schedule.shipment
        why = self.line.spill_due(now, shipment)
        if why is not None:
            self.line.spill_all(shipment, why)
        self.line.limit_memory(now, shipment)
        if finish is not None:
            self._exit.step(finish, now)
        if finish is None or not finish.done.is_set():
            due = self._schedule.due(now, self.line)
            if due is not None:
                self._worker.post(due, self.settings.timeout)

    def _settle(self, shipment: Shipment, verdict: Verdict, finish: Optional[Finish], now: float) -> None:
        settled = self._schedule.settle(shipment, verdict, now)
        if finish is not None:
            if settled.delivered:
                finish.progressed(now)
            if settled.retrying:
                self._exit.abandon(finish, now)  # no backing off at exit: spool it

    def run_inline(self, deadline: float) -> None:
        """The loop on the caller's thread, requests included (no thread can start at
        interpreter shutdown on Python 3.12+); bounded by ``deadline`` and ``EXIT_STALL``."""
        board = self._board
        while True:
            with board.cond:
                taken = board.handoff.take()
                finish = board.finish
                if board.looks_asked > board.looks_done:
                    self._spool.next_poll = 0.0
            self._step(taken, None, finish)
            with board.cond:
                board.absorbed += len(taken)
                job, board.job = board.job, None
                self._publish()
                board.looks_done = board.looks_asked
            now = time.monotonic()
            if job is None or now >= deadline:
                if job is not None:
                    self._schedule.in_flight = False
                if finish is not None and not finish.done.is_set():
                    self._exit.abandon(finish, now)
                with board.cond:
                    self._publish()
                return
            shipment, _ = job
            verdict = shipment.attempt(max(min(self.settings.timeout, deadline - now, _exit.EXIT_STALL), 0.01))
            self._settle(shipment, verdict, finish, time.monotonic())

    def _publish(self) -> None:
        """What the other threads may know of this thread's state (under the board's lock)."""
        board, memory, schedule = self._board, self.line.memory, self._schedule
        shipment = schedule.shipment
        board.quiet = not (board.handoff or memory or shipment is not None or self._spool.first)
        board.safe = not (board.handoff or memory or schedule.in_memory)
        board.holding = bool(memory) or shipment is not None
        board.parked = schedule.park_reason()
        board.in_flight, board.send_at = schedule.in_flight, schedule.send_at
        board.verdict = shipment.verdict if shipment is not None else None

    def _wake_at(self, now: float) -> float:
        """When the dispatcher thread has something to do without being told (under the lock)."""
        times = [now + 30.0]
        finish = self._board.finish
        if finish is not None:
            if finish.done.is_set():
                return now if finish.stop else times[0]
            times.extend(self._exit.wake_times(finish))
        schedule = self._schedule
        times.extend(self.line.wake_times(now, schedule.shipment))
        if not schedule.in_flight and (schedule.shipment is not None or self.line.memory or self._spool.first):
            times.append(schedule.send_at)
        return min(times)

    def _complete(self, finish: Finish) -> None:
        with self._board.cond:
            if self._board.finish is finish and not finish.stop:
                self._board.finish = None
            finish.done.set()
            self._board.cond.notify_all()

    def ensure_threads(self) -> bool:
        """Start the two threads in this process if they are not running; False if they cannot
        start (interpreter shutdown: then the caller's thread does the work)."""
        if self.inline or self.threads_alive():
            return True
        with self._board.cond:
            if self.threads_alive():
                return True
            # Only a thread that is not running is started: a dispatcher thread beside one still
            # alive would work on the same state (its threads never end on an error, but a
            # thread killed another way must not lead to two).
            targets = ((self._run, "posthog-otel-dispatch"), (self._http_run, "posthog-otel-http"))
            threads: List[Optional[threading.Thread]] = list(self._threads) or [None, None]
            try:
                for index, (target, name) in enumerate(targets):
                    current = threads[index]
                    if current is None or not current.is_alive():
                        started = threading.Thread(target=target, name=name, daemon=True)
                        threads[index] = started
                        started.start()
            except RuntimeError:
                self.inline = True
                return False
            self._threads = [t for t in threads if t is not None]
        return True

    def threads_alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)
