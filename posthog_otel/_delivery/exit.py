"""The exit protocol: deliver what is pending while PostHog answers promptly, spool the rest.

A ``Finish`` is asked for at exit, at SIGTERM, at a multiprocessing child's exit, by a flush
that gives up waiting (then without ``stop``: the threads go on). The dispatcher thread steps
it (``ExitProtocol.step``) until it is done: no backing off; a request unanswered after
``EXIT_STALL`` is a stall, what memory holds is spooled and nothing more starts unless
PostHog takes that request; the spool's backlog is sent while each request makes progress.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, List

from .._config import Settings
from .._log import count_drop, logger
from .line import Line, waiting_for
from .schedule import ANSWERED_RECENTLY, Schedule
from .spool_access import SpoolAccess

#: At exit (or SIGTERM): seconds without an answer before what is left is spooled and no
#: further request starts (a stall).
EXIT_STALL = 1.0
#: At exit: seconds without progress (an accepted request) after which no new request starts:
#: each prompt answer extends the budget, up to ``exit_timeout``; the next process sends the rest.
EXIT_SPOOL_DRAIN = 2.0


@dataclass
class Finish:
    """A request to deliver what is pending, then spool the rest: at exit, SIGTERM or fork exit."""

    deadline: float
    stop: bool
    started: float
    last_progress: float
    stepped: float = 0.0  # when the dispatcher last looked at it (0: not yet: at once)
    stalled: bool = False  # a request is unanswered after EXIT_STALL: none starts unless it is taken
    done: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def within(cls, budget: float, stop: bool) -> "Finish":
        now = time.monotonic()
        return cls(now + budget, stop, now, now)

    def progressed(self, now: float) -> None:
        """PostHog took a request, slowly maybe: exit goes on (up to its budget)."""
        self.last_progress, self.stalled = now, False


class ExitProtocol:
    """Steps a ``Finish`` on the dispatcher thread; ``complete`` tells the waiting caller."""

    def __init__(
        self, settings: Settings, line: Line, schedule: Schedule, spool: SpoolAccess,
        complete: Callable[[Finish], None],
    ) -> None:  # fmt: skip
        self._settings = settings
        self._line = line
        self._schedule = schedule
        self._spool = spool
        self._complete = complete

    def step(self, finish: Finish, now: float) -> None:
        """Deliver what memory holds, then the spool's backlog, while PostHog takes the requests
        (up to the budget). A request unanswered after ``EXIT_STALL`` is a stall: what memory
        holds is spooled, and nothing more starts unless PostHog takes that request. It is
        waited for while PostHog is known to answer (it may have taken it: sent again, its
        ``$set``s would be applied again), up to its timeout and the budget; else abandoned."""
        if finish.done.is_set():
            return
        finish.stepped = now
        schedule = self._schedule
        if now >= finish.deadline:
            self.abandon(finish, now)
            return
        if schedule.in_flight:
            if now - max(finish.last_progress, schedule.sent_at) >= EXIT_STALL:
                if not finish.stalled:
                    finish.stalled = True
                    if self._spool.usable(now):
                        self._line.spill_all(schedule.shipment)  # nothing waits only in memory from here
                silent = now - schedule.answered_at >= ANSWERED_RECENTLY
                if silent or now - schedule.sent_at >= self._settings.timeout:
                    self.abandon(finish, now)
            return
        if finish.stalled:
            self.abandon(finish, now)
            return
        if now < schedule.asked_to_wait_until and self._spool.usable(now):
            self.abandon(finish, now)  # PostHog said when to come back (Retry-After): the spool keeps it till then
            return
        if self._line.memory or schedule.in_memory:
            schedule.send_at = min(schedule.send_at, now)  # no backing off at exit
            return
        progressing = now - max(finish.last_progress, finish.started) < EXIT_SPOOL_DRAIN
        if (schedule.shipment is not None or self._spool.first) and not self._spool.busy and progressing:
            schedule.send_at = min(schedule.send_at, now)
            return
        self.abandon(finish, now)

    def abandon(self, finish: Finish, now: float) -> None:
        """Stop delivering for now: what only memory holds goes to the spool (or, at exit with
        no usable spool, is counted lost); a claimed batch not in flight goes back in line."""
        schedule = self._schedule
        if not (self._spool.usable(now) and self._line.spill_all(schedule.shipment)) and finish.stop:
            in_memory = schedule.in_memory
            lost = self._line.drop_at_exit(schedule.shipment)
            if lost:
                count_drop("undelivered_at_exit", lost)
                logger.error(
                    "posthog_otel: %d event(s) not delivered before exit (%s) and the spool is %s; dropped",
                    lost, waiting_for(schedule.shipment, self._settings.api_key),
                    "unusable" if self._spool.on else "off",
                )  # fmt: skip
            if in_memory:
                schedule.shipment = None
        if finish.stop and schedule.shipment is not None and not schedule.in_memory and not schedule.in_flight:
            schedule.release()
        self._complete(finish)

    def wake_times(self, finish: Finish) -> List[float]:
        """When an unfinished ``finish`` needs a look without being told."""
        schedule = self._schedule
        times = [finish.deadline]
        if not finish.stalled:
            times.append(max(finish.last_progress, schedule.sent_at) + EXIT_STALL)
        elif schedule.in_flight:  # waiting for an answer: until the request's own timeout, or silence
            times.append(min(schedule.sent_at + self._settings.timeout, schedule.answered_at + ANSWERED_RECENTLY))
        if not schedule.in_flight:  # look again shortly (measured from the last look, not from now)
            times.append(finish.stepped + 0.02)
        return times
