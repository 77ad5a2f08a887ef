"""The shipment's schedule, the HTTP worker and the exit protocol, against a real loopback
PostHog (tests/support.py's capture server) and a real spool directory."""

from __future__ import annotations

import threading

from posthog_otel import _log
from posthog_otel._config import Settings
from posthog_otel._delivery.board import Board
from posthog_otel._delivery.encoding import EncodedBatch, encode_event
from posthog_otel._delivery.exit import ExitProtocol, Finish
from posthog_otel._delivery.http import HttpTransport
from posthog_otel._delivery.line import Line
from posthog_otel._delivery.memory import Waiting
from posthog_otel._delivery.retry import RetryPolicy
from posthog_otel._delivery.schedule import Schedule
from posthog_otel._delivery.sender import HttpWorker
from posthog_otel._delivery.spool_access import SpoolAccess, open_spool
from posthog_otel._hooks import Hooks
from posthog_otel._stats import Stats

from .conftest import API_KEY
from .support import Fault


def _event(n):
    return {"event": "$set", "distinct_id": "person", "uuid": "0190f4c1-0000-7000-8000-%012d" % n,
            "timestamp": "2024-01-01T00:00:00+00:00", "properties": {}, "$set": {"n": n}}  # fmt: skip


def _batch(*numbers):
    return EncodedBatch.of([encode_event(_event(n)) for n in numbers], len(numbers))


class Parts:
    """The delivery core's parts for one exporter, wired as the dispatcher wires them."""

    def __init__(self, server, tmp_path, spool=True, max_attempts=10):
        self.settings = Settings.resolve(api_key=API_KEY, host=server.url, spool=spool, spool_dir=str(tmp_path))
        disk = open_spool(self.settings)
        self.stats = Stats(disk)
        self.spool = SpoolAccess(disk, self.stats)
        self.line = Line(self.settings, self.spool)
        policy = RetryPolicy(max_attempts=max_attempts, backoff_base=0.01, backoff_max=0.02)
        self.schedule = Schedule(self.settings, policy, HttpTransport(), Hooks(), self.spool, self.stats)
        self.board = Board()
        self.completed = []
        self.exit = ExitProtocol(self.settings, self.line, self.schedule, self.spool, self.completed.append)

    def send(self, now=0.0):
        """One attempt on the HTTP worker's own thread; its answer, as the board got it."""
        shipment = self.schedule.due(now, self.line)
        assert shipment is not None
        self.board.finish = None
        worker = HttpWorker(self.board)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        worker.post(shipment, 5.0)
        with self.board.cond:
            self.board.cond.wait_for(lambda: self.board.answer is not None, 10)
            answer, self.board.answer = self.board.answer, None
            self.board.finish = Finish.within(0.0, stop=True)
            self.board.finish.done.set()  # the worker ends
            self.board.cond.notify_all()
        thread.join(5)
        assert answer is not None and not thread.is_alive()
        return answer


def test_a_shipment_goes_out_and_its_answer_settles_it(server, tmp_path):
    parts = Parts(server, tmp_path)
    parts.line.enqueue([Waiting(_batch(1, 2), 0.0)])
    shipment, verdict = parts.send()
    assert parts.schedule.in_flight and parts.schedule.due(0.0, parts.line) is None  # one at a time
    assert parts.schedule.settle(shipment, verdict, 1.0) == (True, False)
    assert parts.schedule.shipment is None and not parts.schedule.in_flight
    assert [e["$set"] for e in server.events] == [{"n": 1}, {"n": 2}]
    assert parts.stats.counts()["exported"] == 2


def test_a_refusal_backs_off_then_without_a_spool_the_attempts_are_bounded(server, tmp_path):
    server.fail_next(Fault(503), Fault(503))
    parts = Parts(server, tmp_path, spool=False, max_attempts=2)
    parts.line.enqueue([Waiting(_batch(1), 0.0)])
    shipment, verdict = parts.send(now=10.0)
    assert parts.schedule.settle(shipment, verdict, 10.0) == (False, True)
    assert parts.schedule.send_at > 10.0 and parts.schedule.shipment is shipment  # the same again, later
    shipment, verdict = parts.send(now=parts.schedule.send_at)
    parts.schedule.settle(shipment, verdict, 20.0)
    assert parts.schedule.shipment is None and _log.drop_counts() == {"delivery_failed": 1}


def test_an_answer_after_exit_is_settled_by_the_worker_itself(server, tmp_path):
    parts = Parts(server, tmp_path)
    parts.line.enqueue([Waiting(_batch(1), 0.0)])
    shipment = parts.schedule.due(0.0, parts.line)
    parts.line.spill_all(shipment)  # it is a claim on the spool now
    assert shipment.claim is not None and parts.spool.pending()
    parts.board.finish = Finish.within(0.0, stop=True)
    parts.board.finish.done.set()  # exit is over while the request is out
    worker = HttpWorker(parts.board)
    parts.board.job = (shipment, 5.0)
    worker.run()  # the request, then the worker settles it and ends
    assert parts.board.answer is None and [e["$set"] for e in server.events] == [{"n": 1}]
    assert not parts.spool.pending()  # delivered: removed, not left claimed


def test_exit_without_a_spool_counts_what_only_memory_holds(server, tmp_path, caplog):
    parts = Parts(server, tmp_path, spool=False)
    parts.line.enqueue([Waiting(_batch(1, 2, 3), 0.0)])
    finish = Finish.within(1.0, stop=True)
    parts.exit.abandon(finish, 0.0)
    assert parts.completed == [finish] and not parts.line.memory
    assert _log.drop_counts() == {"undelivered_at_exit": 3}
    assert "3 event(s) not delivered before exit" in caplog.text


def test_exit_with_a_spool_spools_what_memory_holds_and_gives_back_a_claim(server, tmp_path):
    parts = Parts(server, tmp_path)
    parts.line.enqueue([Waiting(_batch(1), 0.0)])
    parts.schedule.due(0.0, parts.line)
    parts.schedule.in_flight = False  # its request never went out
    parts.line.enqueue([Waiting(_batch(2), 0.0)])
    finish = Finish.within(1.0, stop=True)
    parts.exit.abandon(finish, 0.0)
    assert parts.completed == [finish] and parts.schedule.shipment is None and not parts.line.memory
    chosen, _ = parts.line.next(0.0)  # both in the spool, in order, claimable again
    assert chosen is not None and [e["$set"] for e in chosen.batch.events()] == [{"n": 1}, {"n": 2}]
    assert _log.drop_counts() == {}


def test_exit_sends_at_once_what_memory_holds_and_stops_at_its_deadline(server, tmp_path):
    parts = Parts(server, tmp_path)
    parts.line.enqueue([Waiting(_batch(1), 0.0)])
    parts.schedule.send_at = 50.0  # backing off
    finish = Finish(deadline=100.0, stop=True, started=0.0, last_progress=0.0)
    parts.exit.step(finish, 10.0)
    assert parts.schedule.send_at == 10.0 and not parts.completed  # no backing off at exit
    parts.exit.step(finish, 100.0)
    assert parts.completed == [finish] and not parts.line.memory  # spooled at the deadline


def test_exit_looks_again_20_ms_after_its_last_look_however_often_the_dispatcher_wakes(server, tmp_path):
    # Measured from "now", a dispatcher woken more often than every 20 ms (batches still
    # arriving) would push its next look at the exit further at each wake, and never take it.
    parts = Parts(server, tmp_path)
    parts.line.enqueue([Waiting(_batch(1), 0.0)])
    finish = Finish(deadline=100.0, stop=True, started=0.0, last_progress=10.0)  # not stalled before 11
    parts.exit.step(finish, 10.0)
    assert not parts.schedule.in_flight
    assert min(parts.exit.wake_times(finish)) == 10.0 + 0.02
    assert min(parts.exit.wake_times(finish)) == 10.0 + 0.02  # the same when asked again later
