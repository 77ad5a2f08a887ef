"""The HTTP thread: one request at a time, so that a PostHog that hangs holds nothing else.

It takes the ``job`` the dispatcher thread posted on the board, makes the attempt (which
never raises: ``Shipment.attempt`` turns whatever the transport does into a verdict, so a
transport that raises cannot end this thread) and posts the answer back. After exit is done
it settles its last answer itself: a claimed batch must not stay claimed by a process that
lives on.
"""

from __future__ import annotations

from .board import Board
from .client import Shipment, Step
from .retry import Verdict


class HttpWorker:
    def __init__(self, board: Board) -> None:
        self._board = board

    def post(self, shipment: Shipment, timeout: float) -> None:
        """From the dispatcher thread: send ``shipment`` (one request, ``timeout`` seconds)."""
        with self._board.cond:
            self._board.job = (shipment, timeout)
            self._board.cond.notify_all()

    def run(self) -> None:
        """The thread's loop: ends once exit is done (``Board.stopped``)."""
        board = self._board
        while True:
            with board.cond:
                while board.job is None:
                    if board.stopped():
                        return
                    board.cond.wait(1.0)
                shipment, timeout = board.job
                board.job = None
            verdict = shipment.attempt(timeout)  # never raises, whatever the transport does
            with board.cond:
                stopped = board.stopped()
                if not stopped:
                    board.answer = (shipment, verdict)
                    board.cond.notify_all()
            if stopped:
                settle_late(shipment, verdict)
                return


def settle_late(shipment: Shipment, verdict: Verdict) -> None:
    """The answer to a request still in flight when the dispatcher stopped: a claimed batch
    is removed if delivered, else given back to the spool."""
    claim = shipment.claim
    if claim is None:
        return
    try:
        if shipment.settle(verdict) is Step.DONE:
            claim.done()
        else:
            claim.release(shipment.remaining())
    except OSError:
        pass
