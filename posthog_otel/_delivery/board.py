"""What the dispatcher's threads and its callers share, under one condition.

The SDK's worker hands batches in; a flush asks for a look at the spool and waits; exit asks
for a ``Finish``; the dispatcher thread posts a ``job`` for the HTTP thread, which posts the
``answer`` back. The dispatcher thread's own state (memory, the shipment, the spool's state)
is its alone: at the end of each step it publishes here what the others may ask about it
(``quiet``, ``safe``, ``holding``, ``in_flight``...), so that no other thread reads it.
"""

from __future__ import annotations

import threading
from typing import Optional, Tuple

from .client import Shipment
from .exit import Finish
from .handoff import Handoff
from .retry import Verdict


class Board:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.closed = False
        self.parked: Optional[str] = None  # why what is left waits on what no wait fixes
        self.looks_asked = self.looks_done = 0  # a flush's "look at the spool now", and the answer
        self._reset()

    def _reset(self) -> None:
        self.handoff = Handoff()
        self.accepted = 0  # hand-offs taken so far; a flush waits until the thread is past its target
        self.absorbed = 0
        self.job: Optional[Tuple[Shipment, float]] = None  # for the HTTP thread: a request, its timeout
        self.answer: Optional[Tuple[Shipment, Verdict]] = None  # its answer, for the dispatcher thread
        self.finish: Optional[Finish] = None
        # Published by the dispatcher thread:
        self.quiet = True  # nothing pending anywhere
        self.safe = True  # nothing only in memory: all delivered, or in the spool
        self.holding = False  # memory, or a shipment, holds events
        self.in_flight = False  # a request is out
        self.send_at = 0.0  # when the next attempt is due
        self.verdict: Optional[Verdict] = None  # PostHog's latest answer on the shipment

    def after_fork(self) -> None:
        """In a forked child: a lock no parent thread holds, and none of the parent's backlog
        (a closed dispatcher stays closed)."""
        self.cond = threading.Condition()
        self._reset()

    def stopped(self) -> bool:
        """Exit is done and the threads end (under ``cond``)."""
        finish = self.finish
        return finish is not None and finish.stop and finish.done.is_set()
