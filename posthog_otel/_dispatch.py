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
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

from . import _emit, _lifecycle, _log
from ._client import Shipment, Step, too_large
from ._config import Settings, effective, redact, scrub
from ._encoding import MAX_REQUEST_BYTES, EncodedBatch
from ._hooks import DeliveryError, Hooks
from ._http import HttpTransport, Transport
from ._log import count_drop, logger, warn_limited
from ._mapping import Defaults, Operation, to_posthog_events
from ._protocol import policy_for
from ._retry import Backoff, Outcome, RetryPolicy, Verdict
from ._sequence import SequenceTracker
from ._spool import BUSY, Claim, DiskSpool, SpoolUnavailable, spool_directory
from ._stats import Stats, register_metrics
from ._system import system_properties
from ._version import __version__

LIBRARY = "posthog-otel"

#: Records the hand-off holds before ``export()`` encodes batches itself (the thread is behind).
HANDOFF_MAX_RECORDS = 16384
#: Encoded events waiting in memory: past it they are spilled (spool on) or the oldest dropped.
MEMORY_MAX_BYTES = 16 * 1024 * 1024
#: Request body budget: PostHog takes 20 MiB; the envelope needs a little.
REQUEST_BYTES = MAX_REQUEST_BYTES - 1024
#: Seconds between looks at the spool for batches of other processes.
SPOOL_POLL = 1.0
#: Seconds between looks at a spool whose oldest batch another process is sending.
BUSY_POLL = 0.25
#: At exit (or SIGTERM): seconds without an answer before what is left is spooled and no
#: further request starts (a stall).
EXIT_STALL = 1.0
#: At exit: seconds without progress (an accepted request) after which no new request starts:
#: each prompt answer extends the budget, up to ``exit_timeout``; the next process sends the rest.
EXIT_SPOOL_DRAIN = 2.0
#: Seconds within which PostHog must have answered something (any status) for exit to wait
#: for a request in flight, rather than abandon it after ``EXIT_STALL`` (a re-sent batch
#: re-applies its ``$set``s): a PostHog that answers slowly is waited for, a silent one is not.
ANSWERED_RECENTLY = 30.0
#: Seconds before a spool that failed (a read-only or full disk) is tried again.
SPOOL_RETRY = 30.0
#: Seconds the dispatcher pauses after an internal error (a bug), so that one that repeats
#: costs a log line a minute and a count, not a core.
INTERNAL_ERROR_PAUSE = 0.5

Read = Callable[[Sequence[Any]], Tuple[List[Operation], List[int]]]


class MappedEvents(List[Dict[str, Any]]):
    """PostHog events mapped by the caller (the gateway maps on its request threads, to say
    at once which records it refused): ``hand_off`` takes them as they are, no ``read``."""


@dataclass
class _Waiting:
    batch: EncodedBatch
    born: float  # when the exporter got it (monotonic)


@dataclass
class _Finish:
    """A request to deliver what is pending, then spool the rest: at exit, SIGTERM or fork exit."""

    deadline: float
    stop: bool
    started: float
    last_progress: float
    stepped: float = 0.0  # when the dispatcher last looked at it (0: not yet: at once)
    stalled: bool = False  # a request is unanswered after EXIT_STALL: none starts unless it is taken
    done: threading.Event = field(default_factory=threading.Event)


class Dispatcher:
    """``hand_off(items)`` from the SDK's worker; everything else on its own threads."""

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
        self._read = read
        #: super_properties, before_send, on_error: applied to events before they are encoded.
        self.hooks = hooks if hooks is not None else Hooks(is_server=settings.is_server)
        #: Whose records these are (their sequence numbers): the module's operations, or a Client's.
        self._emitter = emitter if emitter is not None else _emit.emitter
        self._policy = policy_for(settings.capture_mode, retry_policy or RetryPolicy(max_attempts=settings.max_attempts))
        self._transport: Transport = transport if transport is not None else HttpTransport()
        self._defaults = Defaults(
            library={"$lib": LIBRARY, "$lib_version": __version__, **({"$is_server": True} if settings.is_server else {})},
            system=system_properties(),
            disable_geoip=settings.disable_geoip,
            trace_context=settings.trace_context,
        )
        self._spool = self._open_spool()
        self._stats = Stats(self._spool, self._gauges, getattr(self._emitter, "drops", None))
        self._tracker = SequenceTracker(self._checkpoint(), getattr(self._emitter, "unused", frozenset()))
        self._cond = threading.Condition()
        # Shared with the SDK's worker and the HTTP thread (under _cond):
        self._handoff: Deque[Tuple[float, Any]] = deque()
        self._handoff_records = 0
        self._accepted = 0  # hand-offs taken so far; a flush waits until the thread is past its target
        self._absorbed = 0
        self._quiet = True  # nothing pending anywhere (the dispatcher thread's view)
        self._safe = True  # nothing only in memory: all delivered, or in the spool
        self._parked: Optional[str] = None  # why what is left waits on what no wait fixes
        self._looks_asked = self._looks_done = 0  # a flush's "look at the spool now", and the answer
        self._job: Optional[Tuple[Shipment, float]] = None
        self._answer: Optional[Tuple[Shipment, Verdict]] = None
        self._finish: Optional[_Finish] = None
        self._closed = False
        # The dispatcher thread's own state:
        self._memory: Deque[_Waiting] = deque()
        self._memory_bytes = 0
        self._memory_events = 0
        self._shipment: Optional[Shipment] = None
        self._in_flight = False
        self._sent_at = 0.0
        self._send_at = 0.0
        self._answered_at = -ANSWERED_RECENTLY  # when PostHog last answered anything (monotonic)
        self._asked_to_wait_until = 0.0  # a Retry-After's end: exit does not come back before it
        self._backoff = Backoff(self._policy)
        self._disk_mode = False
        self._busy = False  # the spool's oldest batch is another sender's
        self._spool_down_until = 0.0
        self._next_poll = 0.0
        self._warned_unauthorized = False
        self._threads: List[threading.Thread] = []
        self._inline = False  # threads could not start (interpreter shutdown): work on the caller's
        self._pid = os.getpid()
        register_metrics(self._stats)
        _lifecycle.register(self, settings.handle_sigterm)
        if self._spool is not None and self._spool.pending():
            self._ensure_threads()  # batches left by an earlier process: send them now

    def __repr__(self) -> str:
        return "Dispatcher(host=%r, api_key=%r)" % (self.settings.host, redact(self.settings.api_key))

    # --- called from other threads ------------------------------------------------------

    def hand_off(self, items: Sequence[Any]) -> bool:
        """Take a batch from the SDK's worker and return at once; False once shut down."""
        if self._pid != os.getpid():
            self.after_fork()
        now = time.monotonic()
        with self._cond:
            if self._closed:
                refused = True
            else:
                refused = False
                if self._handoff_records + len(items) <= HANDOFF_MAX_RECORDS:
                    self._handoff.append((now, items))
                    self._handoff_records += len(items)
                    items = ()
                self._accepted += 1
        if refused:
            self._refuse(items)
            return False
        if items:  # the thread is behind: encode here (costs this thread time, loses nothing)
            encoded = self._encode(items)
            with self._cond:
                self._handoff.append((now, encoded))  # in order: its numbers are judged in turn
        with self._cond:
            self._quiet = self._safe = False
            self._cond.notify_all()
        self._ensure_threads()
        if self._inline:
            self._run_inline(time.monotonic() + EXIT_STALL)
        return True

    def wait_safe(self, timeout: float) -> bool:
        """Wait until everything handed off so far is delivered or in the spool: what a
        ``force_flush`` of the SDK's processor (which never asks the exporter) should mean."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._accepted
            while not (self._absorbed >= target and self._safe):
                left = deadline - time.monotonic()
                if left <= 0 or not self._threads_alive():
                    return False
                if self._absorbed >= target and self._parked_why(deadline) is not None:
                    break  # no wait helps: spooled below, at once
                self._cond.wait(min(left, 0.5))
        if self._safe:
            return True
        self.finish(0.0, stop=False)  # spool it now
        return self._safe

    def force_flush(self, timeout_millis: float = 30000) -> bool:
        """Wait until everything handed off so far, and the spool's backlog, is delivered (or
        dropped, counted): True. Returns False as soon as what is left waits on something no
        wait within the timeout fixes (a refused key, a retry due later), or at the timeout,
        with a warning saying what waits and why."""
        deadline = time.monotonic() + max(timeout_millis, 0) / 1000
        with self._cond:
            target = self._accepted
        if target == 0 and not (self._spool is not None and self._spool_pending()):
            return True
        with self._cond:
            self._looks_asked += 1  # look at the spool now: batches there count as waiting
            asked = self._looks_asked
            self._next_poll = 0.0
            self._cond.notify_all()
        self._ensure_threads()
        if self._inline:
            self._run_inline(deadline)
        why = None
        with self._cond:
            while not (self._absorbed >= target and self._looks_done >= asked and self._quiet):
                left = deadline - time.monotonic()
                if left <= 0 or self._closed and self._finish is None and not self._threads_alive():
                    why = "no answer from PostHog in time (%s)" % self._waiting_for() if left <= 0 else "shut down"
                    break
                if self._absorbed >= target and self._looks_done >= asked:
                    why = self._parked_why(deadline)
                    if why is not None:
                        break
                self._cond.wait(min(left, 0.5))
        self._report_losses(self._tracker.settle())
        if why is None:
            return True
        if not self._safe:
            self.finish(0.0, stop=False)  # what memory holds goes to the spool now
        self._report_unflushed(why)
        return False

    def finish(self, budget: float, stop: bool) -> None:
        """Deliver what is pending while PostHog answers promptly, spool the rest; with ``stop``
        the threads end afterwards (exit). Returns within ``budget`` seconds or so."""
        now = time.monotonic()
        request = _Finish(now + min(max(budget, 0.0), self.settings.exit_timeout), stop, now, now)
        with self._cond:
            if self._finish is not None and not self._finish.done.is_set():
                request = self._finish
                request.stop = request.stop or stop
            else:
                self._finish = request
            self._cond.notify_all()
        self._ensure_threads()
        if self._inline:
            self._run_inline(request.deadline)
        else:
            request.done.wait(max(request.deadline - time.monotonic(), 0.0) + 0.5)

    def shutdown(self, timeout_millis: float = 5000, mark: Optional[int] = None) -> None:
        """Stop taking batches; deliver what is pending while PostHog answers promptly (within
        the timeout), spool the rest; then close and log a summary if anything was dropped.

        ``mark`` (from the emitter, at its last exporter's shutdown): records numbered below
        it that never arrived are counted here, as made too late to be exported."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
        pending = self._handoff or self._memory or self._shipment is not None
        if pending or self._threads_alive():
            self.finish(max(timeout_millis, 0) / 1000, stop=True)
        gaps, never = self._tracker.close(mark)
        self._report_losses(gaps)
        self._report_never_exported(never)
        _lifecycle.unregister(self)
        if not self._in_flight:
            self._transport.close()
        self._summarise()

    def remove_spool_if_empty(self) -> bool:
        """After ``shutdown``: remove this key's spool directory if nothing waits there (a
        gateway's project closed for good); a later process with the key makes it again."""
        return self._spool is not None and self._spool.remove_if_empty()

    def stats(self) -> Dict[str, Any]:
        """Events exported, request retries, events spooled and drained, drops by reason,
        what waits in memory and in the spool."""
        return self._stats.snapshot()

    def after_fork(self) -> None:
        """In a forked child: new locks, no threads, and none of the parent's backlog (the
        parent delivers it)."""
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._handoff.clear()
        self._handoff_records = self._accepted = self._absorbed = 0
        self._quiet, self._safe, self._job, self._answer, self._finish = True, True, None, None, None
        self._memory.clear()
        self._memory_bytes = self._memory_events = 0
        self._shipment, self._in_flight, self._send_at, self._disk_mode = None, False, 0.0, False
        self._asked_to_wait_until = 0.0
        self._threads = []
        self._inline = False
        self._stats.after_fork()
        if self._spool is not None:
            self._spool.after_fork()
        self._tracker.after_fork(self._checkpoint())
        after_fork = getattr(self._transport, "after_fork", None)
        if after_fork is not None:
            after_fork()

    # --- the dispatcher thread ------------------------------------------------------------

    def _run(self) -> None:
        _lifecycle.leave_signals_to_the_main_thread()
        _log.attribute_drops_to(self._stats.drops)  # what this thread drops is this exporter's
        while True:
            with self._cond:
                now = time.monotonic()
                wake = self._wake_at(now)
                while not (self._handoff or self._answer or wake <= now or self._looks_asked > self._looks_done):
                    self._cond.wait(wake - now)
                    now = time.monotonic()
                    wake = self._wake_at(now)
                taken = list(self._handoff)
                self._handoff.clear()
                self._handoff_records = 0
                answer, self._answer = self._answer, None
                finish = self._finish
                looks = self._looks_asked
                if looks > self._looks_done:
                    self._next_poll = 0.0
            try:
                self._step(taken, answer, finish)
            except Exception:  # never let the thread die: say it, count it, carry on
                count_drop("internal_error")
                warn_limited("dispatch_internal", "posthog_otel: internal error in the exporter", level=logging.ERROR)
                logger.debug("internal error in the exporter", exc_info=True)
                if _emit.RAISE_INTERNAL_ERRORS:
                    raise
                time.sleep(INTERNAL_ERROR_PAUSE)  # a fault that repeats must not spin a core
            with self._cond:
                self._absorbed += len(taken)
                self._quiet, self._safe = self._is_quiet(), self._is_safe()
                self._parked = self._park_reason()
                self._looks_done = looks
                self._cond.notify_all()
                if finish is not None and finish.done.is_set() and finish.stop:
                    return

    def _step(self, taken: List[Tuple[float, Any]], answer: Optional[Tuple[Shipment, Verdict]], finish: Optional[_Finish]) -> None:
        arrived: List[_Waiting] = []
        for born, items in taken:
            batch, numbers = items if isinstance(items, tuple) else self._encode(items)
            self._report_losses(self._tracker.saw(numbers))  # in hand-off order: late is not lost
            arrived.extend(_Waiting(piece, born) for piece in batch.requests(REQUEST_BYTES) if piece.count)
        if arrived:
            self._enqueue(arrived)
        now = time.monotonic()
        if answer is not None:
            self._settle(*answer, now)
        self._poll_spool(now)
        why = self._spill_due(now)
        if why is not None:
            self._spill_all(why)
        self._limit_memory(now)
        if finish is not None:
            self._finish_step(finish, now)
        if finish is None or not finish.done.is_set():
            self._send_if_due(now)

    def _encode(self, items: Sequence[Any]) -> Tuple[EncodedBatch, List[int]]:
        """Records to PostHog events to JSON, and the records' sequence numbers."""
        if isinstance(items, MappedEvents):  # the gateway's: mapped (and refusals said) already
            events: List[Dict[str, Any]] = items
            numbers: List[int] = []
        else:
            operations, numbers = self._read(items)
            events, skipped = to_posthog_events(operations, self._defaults)
            for problem in skipped:
                count_drop(problem.reason)
                warn_limited("skip:" + problem.reason, "posthog_otel: record dropped: %s", problem)
        events = self.hooks.apply(events)
        batch, oversized = EncodedBatch.encode(events)
        if oversized:
            too_large(len(oversized), oversized[0].get("event"))
            self.report_error(DeliveryError("too_large", "over PostHog's 900 KiB per event"), lambda: oversized)
        return batch, numbers

    def report_error(self, error: DeliveryError, events: Callable[[], List[Dict[str, Any]]]) -> None:
        """Events dropped undelivered: the application's ``on_error``, if it has one."""
        self.hooks.report(error, events)

    def _enqueue(self, arrived: List[_Waiting]) -> None:
        """New batches behind the spool (as few files as requests allow), or in memory."""
        if self._disk_mode and self._spool_usable(arrived[0].born):
            while arrived:
                group: List[_Waiting] = []
                size = 0
                while arrived and (not group or size + arrived[0].batch.size < REQUEST_BYTES):
                    size += arrived[0].batch.size
                    group.append(arrived.pop(0))
                if not self._spool_write(EncodedBatch.join([w.batch for w in group])):
                    arrived[:0] = group
                    break
        for waiting in arrived:
            self._memory.append(waiting)
            self._memory_bytes += waiting.batch.size
            self._memory_events += waiting.batch.count

    # --- sending ---------------------------------------------------------------------------

    def _send_if_due(self, now: float) -> None:
        if self._in_flight or now < self._send_at:
            return
        if self._shipment is None:
            self._shipment = self._next_shipment(now)
            if self._shipment is None:
                return
        self._in_flight, self._sent_at = True, now
        with self._cond:
            self._job = (self._shipment, self.settings.timeout)
            self._cond.notify_all()

    def _next_shipment(self, now: float) -> Optional[Shipment]:
        """The spool's oldest batches while it holds any, else what memory holds. A spool whose
        batches cannot be claimed (a read-only disk) holds everything newer back: memory waits
        behind it (bounded, the oldest counted out), so that no later ``$set`` goes first."""
        if self._disk_mode and self._spool is not None:
            try:
                head = self._spool.claim_head(REQUEST_BYTES, 1 << 62)
            except OSError as error:
                self._claims_failed(error, now)
                return None
            self._busy = head is BUSY
            if isinstance(head, Claim):
                return self._shipment_of(head.batch, head, now)
            if self._busy:
                self._send_at = now + BUSY_POLL
                return None
            self._disk_mode = False  # empty
        if not self._memory:
            return None
        taken: List[_Waiting] = []
        size = 0
        while self._memory and (not taken or size + self._memory[0].batch.size < REQUEST_BYTES):
            waiting = self._memory.popleft()
            taken.append(waiting)
            size += waiting.batch.size
        self._memory_bytes -= size
        self._memory_events -= sum(w.batch.count for w in taken)
        return self._shipment_of(EncodedBatch.join([w.batch for w in taken]), taken, taken[0].born)

    def _shipment_of(self, batch: EncodedBatch, source: Any, born: float) -> Shipment:
        settings = effective(self.settings)  # the test fixture's local PostHog, while it runs
        return Shipment(batch, source, born, settings, self._policy, self._transport.post, self.report_error)

    def _http_run(self) -> None:
        _lifecycle.leave_signals_to_the_main_thread()
        _log.attribute_drops_to(self._stats.drops)
        while True:
            with self._cond:
                while self._job is None:
                    if self._finish is not None and self._finish.stop and self._finish.done.is_set():
                        return
                    self._cond.wait(1.0)
                shipment, timeout = self._job
                self._job = None
            verdict = shipment.attempt(timeout)  # never raises, whatever the transport does
            with self._cond:
                stopped = self._finish is not None and self._finish.stop and self._finish.done.is_set()
                if not stopped:
                    self._answer = (shipment, verdict)
                    self._cond.notify_all()
            if stopped:
                self._settle_late(shipment, verdict)
                return

    def _settle_late(self, shipment: Shipment, verdict: Verdict) -> None:
        """The answer to a request still in flight when the dispatcher stopped: a claimed
        batch must not stay claimed by a process that lives on."""
        if not isinstance(shipment.source, Claim):
            return
        try:
            if shipment.settle(verdict) is Step.DONE:
                shipment.source.done()
            else:
                shipment.source.release(shipment.remaining())
        except OSError:
            pass

    def _settle(self, shipment: Shipment, verdict: Verdict, now: float) -> None:
        self._in_flight = False
        if verdict.status is not None:
            self._answered_at = now
        if shipment is not self._shipment:
            return  # an answer for a shipment abandoned at exit
        step = shipment.settle(verdict)
        delivered, shipment.delivered = shipment.delivered, 0
        if delivered:
            self._stats.add("exported", delivered)
            if isinstance(shipment.source, Claim):
                self._stats.add("drained", delivered)
            self._backoff.succeeded()
            if self._finish is not None:  # PostHog took it, slowly maybe: exit goes on (up to its budget)
                self._finish.last_progress, self._finish.stalled = now, False
        if step is Step.DONE or step is Step.NEXT:
            if step is Step.DONE:
                self._done(shipment)
            self._send_at = now
            return
        if step is Step.UNAUTHORIZED:
            self._report_unauthorized(verdict)
            wait = self._policy.unauthorized_wait
        else:
            self._stats.add("retried")
            wait = self._backoff.failed(verdict.retry_after)
            if verdict.retry_after:  # PostHog's own word, not our backoff: 0 means "now"
                self._asked_to_wait_until = now + min(verdict.retry_after, self._policy.retry_after_cap)
        # No spool to keep it in (off, or refused when opened: one notion of "no spool"): the
        # attempts are bounded, as with the spool off.
        if self._spool is None and (step is Step.UNAUTHORIZED or shipment.attempts >= self._policy.max_attempts):
            self._give_up(shipment, verdict, "unauthorized" if step is Step.UNAUTHORIZED else "delivery_failed")
        self._send_at = now + wait
        if self._finish is not None:
            self._abandon(now)  # no backing off at exit: spool it

    def _done(self, shipment: Shipment) -> None:
        self._shipment = None
        if isinstance(shipment.source, Claim):
            try:
                shipment.source.done()
            except OSError as error:
                self._spool_failed(error, time.monotonic())

    def _give_up(self, shipment: Shipment, verdict: Verdict, reason: str) -> None:
        lost = shipment.drop(reason, scrub(verdict.detail, self.settings.api_key), verdict.status)
        self._shipment = None
        warn_limited(  # a refused key was already reported, loudly
            "gave_up:" + reason,
            "posthog_otel: could not deliver %d event(s) to %s (%s); dropped because the spool is off",
            lost, self.settings.host, scrub(verdict.detail, self.settings.api_key),
            level=logging.WARNING if reason == "unauthorized" else logging.ERROR,
        )  # fmt: skip

    # --- memory and spool --------------------------------------------------------------------

    def _spill_due(self, now: float) -> Optional[str]:
        """Why what waits in memory must go to the spool now, or None."""
        if not self._spool_usable(now):
            return None
        shipment = self._shipment
        late = self._memory and now - self._memory[0].born >= self.settings.spool_after
        if late or shipment is not None and not isinstance(shipment.source, Claim) and now - shipment.born >= self.settings.spool_after:
            return "late"
        if self._memory_bytes > MEMORY_MAX_BYTES:
            return "full"
        if self._memory and self._disk_mode:
            return "behind"
        return None

    def _spill_all(self, why: str = "late") -> bool:
        """Everything waiting in memory to the spool, the shipment first: order kept, and the
        process may now die without losing it. False when the spool cannot be written."""
        assert self._spool is not None
        spilled = 0
        shipment = self._shipment
        if shipment is not None and not isinstance(shipment.source, Claim):
            remaining = shipment.remaining()
            if remaining.count:
                try:
                    claim = self._spool.append(remaining, claimed=True)
                except OSError as error:
                    self._spool_failed(error, time.monotonic())
                    return False
                shipment.source = claim
                spilled += remaining.count
                self._stats.add("spooled", remaining.count)
        while self._memory:
            waiting = self._memory[0]
            if not self._spool_write(waiting.batch):
                return False
            self._memory.popleft()
            self._memory_bytes -= waiting.batch.size
            self._memory_events -= waiting.batch.count
            spilled += waiting.batch.count
        self._disk_mode = True
        if not spilled:
            return True
        if why == "behind":  # PostHog is fine: earlier batches (another process's, a past run's) go first
            logger.debug("posthog_otel: %d event(s) queued in the spool %s behind earlier batches", spilled, self._spool)
            return True
        warn_limited(
            "spooled",
            "posthog_otel: PostHog has not taken %d event(s) within %.3g s (%s); kept in the spool %s, "
            "sent in order as soon as it does",
            spilled, self.settings.spool_after,
            self._waiting_for() if why == "late" else "%d MiB wait in memory" % (MEMORY_MAX_BYTES >> 20), self._spool,
        )  # fmt: skip
        return True

    def _spool_write(self, batch: EncodedBatch) -> bool:
        assert self._spool is not None
        try:
            self._spool.append(batch)
        except OSError as error:
            self._spool_failed(error, time.monotonic())
            return False
        self._stats.add("spooled", batch.count)
        return True

    def _poll_spool(self, now: float) -> None:
        """Batches of other processes (or of one that died) go first: queue behind them (read
        even while the spool cannot be written: what it holds is older than what memory holds).
        Delivered batches the disk would not let us remove are removed as soon as it does."""
        if self._spool is None or now < self._next_poll:
            return
        self._next_poll = now + SPOOL_POLL
        try:
            self._spool.retry_removals()
            if not self._disk_mode and self._spool.pending():
                self._disk_mode = True
        except OSError as error:
            self._spool_failed(error, now)

    def _claims_failed(self, error: OSError, now: float) -> None:
        """The spool holds batches we cannot take (a read-only disk): wait, holding newer ones."""
        self._send_at = now + SPOOL_POLL
        warn_limited(
            "spool_claims_failed",
            "posthog_otel: cannot take batches out of the spool %s (%s); newer events wait in memory behind them "
            "(at most %d MiB), so that none overtakes an older one", self._spool, error, MEMORY_MAX_BYTES >> 20,
            level=logging.ERROR,
        )  # fmt: skip

    def _limit_memory(self, now: float) -> None:
        """Without a usable spool, memory is the only place left: bounded, oldest dropped."""
        if self._spool_usable(now):
            return
        dropped = 0
        while self._memory and (
            self._memory_bytes > MEMORY_MAX_BYTES or now - self._memory[0].born > self.settings.spool_max_age
        ):
            waiting = self._memory.popleft()
            self._memory_bytes -= waiting.batch.size
            self._memory_events -= waiting.batch.count
            dropped += waiting.batch.count
        if dropped:
            count_drop("memory_full", dropped)
            warn_limited(
                "memory_full",
                "posthog_otel: %d event(s) dropped: PostHog has not taken them (%s) and memory holds at most "
                "%d MiB of them while the spool is %s",
                dropped, self._waiting_for(), MEMORY_MAX_BYTES >> 20, "off" if self._spool is None else "unusable",
                level=logging.ERROR,
            )  # fmt: skip

    def _spool_usable(self, now: float) -> bool:
        return self._spool is not None and now >= self._spool_down_until

    def _spool_failed(self, error: OSError, now: float) -> None:
        self._spool_down_until = now + SPOOL_RETRY
        warn_limited(
            "spool_failed",
            "posthog_otel: cannot use the spool %s (%s); undelivered events are kept in memory (at most %d MiB) "
            "and it is tried again in %d s",
            self._spool, error, MEMORY_MAX_BYTES >> 20, SPOOL_RETRY, level=logging.ERROR,
        )  # fmt: skip

    def _open_spool(self) -> Optional[DiskSpool]:
        if not self.settings.spool:
            return None
        directory = spool_directory(self.settings)
        try:
            return DiskSpool(directory, self.settings.spool_max_bytes, self.settings.spool_max_age)
        except SpoolUnavailable as error:
            warn_limited(
                "spool_memory",
                "posthog_otel: cannot use the spool directory (%s); undelivered events are kept in memory only "
                "(at most %d MiB), and are lost if the process ends while PostHog is unreachable",
                error, MEMORY_MAX_BYTES >> 20,
            )  # fmt: skip
            return None

    # --- exit ------------------------------------------------------------------------------

    def _finish_step(self, finish: _Finish, now: float) -> None:
        """Deliver what memory holds, then the spool's backlog, while PostHog takes the requests
        (up to the budget). A request unanswered after ``EXIT_STALL`` is a stall: what memory
        holds is spooled, and nothing more starts unless PostHog takes that request. It is
        waited for while PostHog is known to answer (it may have taken it: sent again, its
        ``$set``s would be applied again), up to its timeout and the budget; else abandoned."""
        if finish.done.is_set():
            return
        finish.stepped = now
        if now >= finish.deadline:
            self._abandon(now)
            return
        if self._in_flight:
            if now - max(finish.last_progress, self._sent_at) >= EXIT_STALL:
                if not finish.stalled:
                    finish.stalled = True
                    if self._spool_usable(now):
                        self._spill_all()  # nothing waits only in memory from here
                silent = now - self._answered_at >= ANSWERED_RECENTLY
                if silent or now - self._sent_at >= self.settings.timeout:
                    self._abandon(now)
            return
        if finish.stalled:
            self._abandon(now)
            return
        if now < self._asked_to_wait_until and self._spool_usable(now):
            self._abandon(now)  # PostHog said when to come back (Retry-After): the spool keeps it till then
            return
        shipment = self._shipment
        if self._memory or (shipment is not None and not isinstance(shipment.source, Claim)):
            self._send_at = min(self._send_at, now)  # no backing off at exit
            return
        progressing = now - max(finish.last_progress, finish.started) < EXIT_SPOOL_DRAIN
        if (shipment is not None or self._disk_mode) and not self._busy and progressing:
            self._send_at = min(self._send_at, now)
            return
        self._abandon(now)

    def _abandon(self, now: float) -> None:
        """Stop delivering for now: what only memory holds goes to the spool (or, at exit with
        no usable spool, is counted lost); a claimed batch not in flight goes back in line."""
        finish = self._finish
        stopping = finish is not None and finish.stop
        if not (self._spool_usable(now) and self._spill_all()) and stopping:
            shipment = self._shipment
            in_memory = shipment is not None and not isinstance(shipment.source, Claim)
            lost = self._memory_events + (shipment.remaining().count if in_memory and shipment else 0)
            if lost:
                count_drop("undelivered_at_exit", lost)
                logger.error(
                    "posthog_otel: %d event(s) not delivered before exit (%s) and the spool is %s; dropped",
                    lost, self._waiting_for(), "off" if self._spool is None else "unusable",
                )  # fmt: skip
            self._memory.clear()
            self._memory_bytes = self._memory_events = 0
            if in_memory:
                self._shipment = None
        shipment = self._shipment
        if stopping and shipment is not None and isinstance(shipment.source, Claim) and not self._in_flight:
            self._release(shipment)
        if finish is not None:
            self._complete(finish)

    def _release(self, shipment: Shipment) -> None:
        """Put a claimed shipment back at the head of the spool (what is left of it)."""
        self._shipment = None
        try:
            shipment.source.release(shipment.remaining())
        except OSError as error:
            self._spool_failed(error, time.monotonic())

    def _complete(self, finish: _Finish) -> None:
        with self._cond:
            if self._finish is finish and not finish.stop:
                self._finish = None
            finish.done.set()
            self._cond.notify_all()

    # --- bookkeeping -----------------------------------------------------------------------

    def _wake_at(self, now: float) -> float:
        """When the dispatcher thread has something to do without being told."""
        times = [now + 30.0]
        spool_up = self._spool_usable(now)
        if self._finish is not None:
            if self._finish.done.is_set():
                return now if self._finish.stop else times[0]
            times.append(self._finish.deadline)
            if not self._finish.stalled:
                times.append(max(self._finish.last_progress, self._sent_at) + EXIT_STALL)
            elif self._in_flight:  # waiting for an answer: until the request's own timeout, or silence
                times.append(min(self._sent_at + self.settings.timeout, self._answered_at + ANSWERED_RECENTLY))
            if not self._in_flight:  # look again shortly (measured from the last look, not from now)
                times.append(self._finish.stepped + 0.02)
        if spool_up and self._memory:
            times.append(self._memory[0].born + self.settings.spool_after)
        shipment = self._shipment
        if spool_up and shipment is not None and not isinstance(shipment.source, Claim):
            times.append(shipment.born + self.settings.spool_after)
        if self._spool is not None and (not self._disk_mode or self._spool.has_undeleted):
            times.append(self._next_poll)
        if not self._in_flight and (shipment is not None or self._memory or self._disk_mode):
            times.append(self._send_at)
        if self._spool is not None and not spool_up:
            times.append(self._spool_down_until)
        return min(times)

    def _is_quiet(self) -> bool:
        return not (self._handoff or self._memory or self._shipment is not None or self._disk_mode)

    def _is_safe(self) -> bool:
        shipment = self._shipment
        return not (self._handoff or self._memory or shipment is not None and not isinstance(shipment.source, Claim))

    def _gauges(self) -> Dict[str, int]:
        return {"memory_events": self._memory_events, "memory_bytes": self._memory_bytes,
                "handoff_records": self._handoff_records}  # fmt: skip

    def _ensure_threads(self) -> bool:
        """Start the two threads in this process if they are not running; False if they cannot
        start (interpreter shutdown: then the caller's thread does the work)."""
        if self._inline or self._threads_alive():
            return True
        with self._cond:
            if self._threads_alive():
                return True
            # Only a thread that is not running is started: a dispatcher thread beside one still
            # alive would work on the same state (its threads never end on an error, but a
            # thread killed another way must not lead to two).
            targets = ((self._run, "posthog-otel-dispatch"), (self._http_run, "posthog-otel-http"))
            threads: List[Any] = list(self._threads) or [None, None]
            try:
                for index, (target, name) in enumerate(targets):
                    current = threads[index]
                    if current is None or not current.is_alive():
                        threads[index] = threading.Thread(target=target, name=name, daemon=True)
                        threads[index].start()
            except RuntimeError:
                self._inline = True
                return False
            self._threads = threads
        return True

    def _threads_alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def _run_inline(self, deadline: float) -> None:
        """The loop on the caller's thread, requests included (no thread can start at
        interpreter shutdown on Python 3.12+); bounded by ``deadline`` and ``EXIT_STALL``."""
        while True:
            with self._cond:
                taken = list(self._handoff)
                self._handoff.clear()
                self._handoff_records = 0
                finish = self._finish
            self._step(taken, None, finish)
            with self._cond:
                self._absorbed += len(taken)
                job, self._job = self._job, None
                self._quiet, self._safe = self._is_quiet(), self._is_safe()
                self._parked = self._park_reason()
                self._looks_done = self._looks_asked
            now = time.monotonic()
            if job is None or now >= deadline:
                if job is not None:
                    self._in_flight = False
                if finish is not None and not finish.done.is_set():
                    self._abandon(now)
                return
            shipment, _ = job
            verdict = shipment.attempt(max(min(self.settings.timeout, deadline - now, EXIT_STALL), 0.01))
            self._settle(shipment, verdict, time.monotonic())

    def _parked_why(self, deadline: float) -> Optional[str]:
        """Why what is left cannot leave before ``deadline`` whatever we wait (under ``_cond``)."""
        if self._quiet or self._in_flight:
            return None
        if self._parked is not None:
            return self._parked
        if self._send_at <= deadline:
            return None
        return "the next attempt is due in %.3g s (%s)" % (self._send_at - time.monotonic(), self._waiting_for())

    def _park_reason(self) -> Optional[str]:
        """What no wait fixes, on the dispatcher's thread: PostHog refused the project key (it
        is tried again every ``unauthorized_wait``, 60 s, but a wrong key stays wrong)."""
        shipment = self._shipment
        verdict = shipment.verdict if shipment is not None else None
        if self._in_flight or verdict is None or verdict.outcome is not Outcome.UNAUTHORIZED:
            return None
        return "PostHog refused the project API key %s (HTTP %s): check POSTHOG_API_KEY" % (
            redact(self.settings.api_key), verdict.status)

    def _report_unflushed(self, why: str) -> None:
        stats = self._stats.snapshot()
        warn_limited(
            "unflushed:" + why.split(" (")[0],
            "posthog_otel: flush: %d event(s) in memory and %d batch(es) in the spool %s still wait: %s",
            stats["memory_events"], stats["spool_batches"], self._spool, why,
        )  # fmt: skip

    def _spool_pending(self) -> bool:
        try:
            return self._spool is not None and self._spool.pending()
        except OSError:
            return False

    def _checkpoint(self) -> int:
        """Where this exporter starts judging sequence numbers (only log records carry them)."""
        return self._emitter.checkpoint() if self.kind == "logs" else 0

    def _refuse(self, items: Sequence[Any]) -> None:
        if isinstance(items, MappedEvents):
            refused = len(items)
        else:
            operations, numbers = self._read(items)
            # Numbered records the shutdown counted already (never seen by then) are not counted again.
            refused = len(operations) - len(numbers) + self._tracker.refused(numbers)
        if refused:
            count_drop("after_shutdown", refused)
            warn_limited("export_after_shutdown", "posthog_otel: %d operation(s) exported after shutdown; dropped",
                         refused)  # fmt: skip

    def _report_never_exported(self, lost: int) -> None:
        if lost:
            count_drop("after_shutdown", lost)
            warn_limited(
                "never_exported",
                "posthog_otel: %d operation(s) made while the pipeline shut down never reached the exporter "
                "(the OpenTelemetry batch processor had stopped); dropped", lost, level=logging.ERROR,
            )  # fmt: skip

    def _report_losses(self, lost: int) -> None:
        if lost:
            count_drop("otel_queue_full", lost)
            warn_limited(
                "otel_queue_full",
                "posthog_otel: %d operation(s) were dropped by the OpenTelemetry batch processor before they "
                "reached the exporter (its queue was full); raise its max_queue_size (OTEL_BLRP_MAX_QUEUE_SIZE)",
                lost, level=logging.ERROR,
            )  # fmt: skip

    def _report_unauthorized(self, verdict: Verdict) -> None:
        message = (
            "posthog_otel: PostHog refused the project API key %s at %s (HTTP %s): check POSTHOG_API_KEY "
            "(a project key starts with phc_)"
        )
        args = (redact(self.settings.api_key), self.settings.host, verdict.status)
        if self._warned_unauthorized:
            logger.debug(message, *args)
        else:
            self._warned_unauthorized = True
            logger.error(message, *args)

    def _waiting_for(self) -> str:
        verdict = self._shipment.verdict if self._shipment is not None else None
        if verdict is None:
            return "no answer yet"
        return scrub(verdict.detail or "HTTP %s" % verdict.status, self.settings.api_key)

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
