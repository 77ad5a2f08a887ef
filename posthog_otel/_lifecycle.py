"""The process around the exporters: fork, multiprocessing children, SIGTERM.

- **fork.** A forked child gets copies of our locks (possibly held by a parent thread at
  that instant: held forever in the child) and of what the parent still had to deliver (the
  parent delivers it). After a fork every dispatcher renews its locks and forgets the
  parent's backlog; its threads start again on the child's first operation.
- **multiprocessing children** (``Process``, ``Pool``) end with ``os._exit``: no ``atexit``,
  so the SDK's queue would die with them. A multiprocessing finalizer, registered in each
  child, flushes the SDK's queue and delivers or spools it.
- **SIGTERM** with Python's default disposition kills the process without ``atexit``. When
  nothing else handles it, our handler delivers or spools what is queued, then restores the
  default and sends the signal again, so the process ends exactly as it would have (and a
  ``while True: try: ... except: pass`` loop still cannot swallow it). An application's own
  handler is never replaced. A process that survives its own SIGTERM (pid 1 in a container
  ignores it) carries on, ready for the next.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import weakref
from typing import Any, List, Optional

from opentelemetry import _logs as otel_logs

from . import _emitter, _log, _state
from ._log import logger

#: Seconds SIGTERM may spend delivering before spooling the rest (containers give 10-30 s).
SIGTERM_BUDGET = 3.0
#: Seconds a process that took SIGTERM without ending (its queues not flushed in the budget) has
#: to end by itself, delivering at its exit, before it is ended: a child's exit budget and more.
SIGTERM_GRACE = 10.0
#: Seconds a multiprocessing child's exit may spend delivering before spooling the rest.
CHILD_EXIT_BUDGET = 5.0

_lock = threading.Lock()
_dispatchers: "weakref.WeakSet[Any]" = weakref.WeakSet()
_hooks_installed = False


class _Anchor:
    """Something multiprocessing can hold a weak reference to."""


_anchor = _Anchor()


def register(dispatcher: Any, handle_sigterm: bool) -> None:
    global _hooks_installed
    with _lock:
        _dispatchers.add(dispatcher)
        first, _hooks_installed = not _hooks_installed, True
    if first:
        _state.at_fork(_after_fork_in_child)  # after the modules' own steps, registered at their import
        _watch_multiprocessing()
    if handle_sigterm:
        _install_sigterm_handler()


def unregister(dispatcher: Any) -> None:
    with _lock:
        _dispatchers.discard(dispatcher)


def live() -> List[Any]:
    with _lock:
        return list(_dispatchers)


def persist_all(budget: float, stop: bool, in_signal: bool = False) -> bool:
    """Flush the SDK's queues into our exporters, then deliver (or spool) what they hold.

    False when the SDK's queues could not be flushed: no thread can start (the interpreter
    is exiting, Python 3.12+) and ``in_signal`` (a signal handler must not flush on its own
    thread: it may have interrupted the one holding the SDK's export lock)."""
    deadline = time.monotonic() + budget
    dispatchers = live()
    if not dispatchers:
        return True
    flushed = _flush_sdk_queues(dispatchers, max(deadline - time.monotonic(), 0.1), in_signal)
    for dispatcher in dispatchers:
        dispatcher.finish(max(deadline - time.monotonic(), 0.0), stop=stop)
    return flushed


def flush_global(timeout_seconds: Optional[float] = 30.0) -> bool:
    """Flush the global LoggerProvider (what ``opentelemetry-instrument`` set up) and every
    PostHog exporter of this process: the module's ``flush()`` when ``configure()`` was not called."""
    if _emitter.sdk_disabled():
        _emitter.warn_sdk_disabled()
        return False
    millis = int(timeout_millis(timeout_seconds, None))
    provider: Any = otel_logs.get_logger_provider()
    flushed = bool(provider.force_flush(millis)) if callable(getattr(provider, "force_flush", None)) else True
    return all([d.force_flush(millis) for d in live() if d.kind == "logs"]) and flushed


def timeout_millis(seconds: Optional[float], millis: Optional[float]) -> float:
    if millis is not None:
        return float(millis)
    if seconds is None:
        return float(2**31 - 1)  # as long as it takes (about 25 days)
    return max(float(seconds), 0.0) * 1000.0


def _flush_sdk_queues(dispatchers: List[Any], timeout: float, in_signal: bool) -> bool:
    """``force_flush`` the providers feeding us, on a helper thread: the caller may be a signal
    handler that interrupted the very thread holding the SDK's export lock. Where no thread can
    start (at interpreter exit on 3.12+: a multiprocessing child's exit), on this thread."""
    from opentelemetry import _logs, trace

    providers: List[Any] = []
    if any(d.kind == "logs" for d in dispatchers):
        providers.append(_logs.get_logger_provider())
        providers.extend(pipeline.logger_provider for pipeline in _state.pipelines())  # configure()'s, each Client's
    if any(d.kind == "traces" for d in dispatchers):
        providers.append(trace.get_tracer_provider())
    unique = {id(p): p for p in providers if callable(getattr(p, "force_flush", None))}
    if not unique:
        return True

    def work() -> None:
        try:
            for provider in unique.values():
                provider.force_flush(int(timeout * 1000))
        except Exception:
            logger.debug("posthog_otel: flushing the SDK's queue failed", exc_info=True)

    helper = threading.Thread(target=work, name="posthog-otel-flush", daemon=True)
    try:
        helper.start()
    except RuntimeError:  # "can't create new thread at interpreter shutdown"
        if in_signal:
            return False
        work()
        return True
    helper.join(timeout)
    return True


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    for dispatcher in list(_dispatchers):
        dispatcher.after_fork()


# --- multiprocessing -------------------------------------------------------------------


def _watch_multiprocessing() -> None:
    """Have every multiprocessing child flush at its exit. Importing ``multiprocessing`` costs
    ~8 ms, most of ``configure()``'s time; an application that never imports it should not pay
    for it. So: now if it is imported already (a spawn or forkserver child always has it), else
    in any forked child whose parent has imported it by then."""
    if "multiprocessing.util" in sys.modules:
        _register_with_multiprocessing()
    else:
        _state.at_fork(_register_if_multiprocessing)


def _register_if_multiprocessing() -> None:
    # A plain fork: multiprocessing's own start-up in this child (if it is its child) runs the
    # after-fork callbacks registered by now, after clearing the parent's finalizers.
    if "multiprocessing.util" in sys.modules:
        _register_with_multiprocessing()


def _register_with_multiprocessing() -> None:
    try:
        import multiprocessing
        import multiprocessing.util as mp_util
    except ImportError:  # pragma: no cover - some embedded interpreters
        return
    # Called in every forked multiprocessing child at start-up (fork, forkserver), after it
    # cleared the parent's finalizers: register ours there.
    mp_util.register_after_fork(_anchor, _in_multiprocessing_child)
    # A spawned child runs no after-fork hooks (nothing was forked), and a child that sets up
    # its pipeline itself was forked before any hook existed: register ours now. Without it a
    # spawned pool worker delivered only from its interpreter's exit, where ``with Pool()``'s
    # SIGTERM lands, and where Python 3.12+ can no longer start the threads that deliver.
    # (While a spawned child imports the parent's main module, ``parent_process()`` is not set
    # yet; the flag the standard library's own spawn and forkserver code reads is.)
    if multiprocessing.parent_process() is not None or getattr(multiprocessing.current_process(), "_inheriting", False):
        _in_multiprocessing_child(_anchor)


def _in_multiprocessing_child(anchor: Any) -> None:
    import multiprocessing.util as mp_util

    mp_util.Finalize(anchor, _at_multiprocessing_exit, exitpriority=100)


def _at_multiprocessing_exit() -> None:
    try:
        persist_all(CHILD_EXIT_BUDGET, stop=True)
    except Exception:  # never fail a child's exit
        logger.debug("posthog_otel: error at multiprocessing child exit", exc_info=True)


# --- SIGTERM ---------------------------------------------------------------------------


def leave_signals_to_the_main_thread() -> None:
    """Block SIGTERM in the calling (background) thread, so that the kernel delivers it to the
    main thread.

    A Python-level handler (ours) runs only in the main thread, and only when that thread gets
    back to Python. A SIGTERM the kernel hands to a background thread instead only sets a flag;
    if the main thread is blocked in C meanwhile (a multiprocessing pool worker waiting on a lock
    that a terminated sibling held), nothing ever runs the handler and the process never ends,
    where without a handler it would have died. Delivered to the main thread, the same signal
    interrupts that wait (EINTR) and the handler runs.
    """
    _block_sigterm()


class threads_leave_signals_to_the_main_thread:
    """``with ...:`` threads started inside (the OTel SDK's batch worker, which we cannot reach
    otherwise) inherit a mask that blocks SIGTERM; so do the ones the SDK starts again in a
    forked child, through a pair of fork hooks around its own."""

    def __enter__(self) -> None:
        self._saved = _block_sigterm()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_block_in_child)

    def __exit__(self, *exc: Any) -> None:
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_unblock_in_child)
        _restore_mask(self._saved)


_child_saved: List[Any] = []


def _block_sigterm() -> Any:
    if not (hasattr(signal, "pthread_sigmask") and hasattr(signal, "SIGTERM")):
        return None
    try:
        return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    except (OSError, ValueError):
        return None


def _restore_mask(saved: Any) -> None:
    if saved is not None:
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, saved)
        except (OSError, ValueError):
            pass


def _block_in_child() -> None:
    _child_saved.append(_block_sigterm())


def _unblock_in_child() -> None:
    if _child_saved:
        _restore_mask(_child_saved.pop())


def _install_sigterm_handler() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):  # no signals here (some embedded interpreters)
        pass


def _on_sigterm(signum: int, frame: Any) -> None:
    # The process may be exiting already (the main thread has ended: atexit handlers run, the
    # SDK's shutdown among them, or a multiprocessing child's exit, where ``with Pool()``'s
    # SIGTERM lands). That exit delivers what is queued; this handler could not reach it without
    # risking a deadlock, and ending the process now would lose it. So the exit goes on (bounded
    # by its budgets); a second SIGTERM ends the process at once. The same when the SDK's queues
    # could not be flushed within the budget (a loaded machine): a pool worker then ends by its
    # pool's sentinel and delivers at its exit. Should it not end by itself (a worker blocked on
    # its task queue; seen with Python 3.12's spawned pools), it is ended after ``SIGTERM_GRACE``:
    # whoever sent the signal may be waiting for it (``Pool.terminate()`` joins its workers).
    exiting = not threading.main_thread().is_alive()
    persisted = False
    if not exiting:
        try:
            persisted = persist_all(SIGTERM_BUDGET, stop=False, in_signal=True)
        except Exception:
            persisted = True
            logger.debug("posthog_otel: error while persisting at SIGTERM", exc_info=True)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not persisted:
        logger.debug("posthog_otel: SIGTERM while the process exits: the exit finishes delivering")
        if not exiting:
            _end_after(SIGTERM_GRACE)
        return
    os.kill(os.getpid(), signal.SIGTERM)  # end as the default disposition would have
    # Still here: the signal is ignored for us (pid 1 in a container) or blocked.
    signal.signal(signal.SIGTERM, _on_sigterm)
    _log.warn_limited(
        "sigterm_survived",
        "posthog_otel: SIGTERM did not end this process (pid %d; pid 1 ignores it unless the application "
        "handles it); queued operations were delivered or spooled and it carries on",
        os.getpid(),
    )


def _end_after(seconds: float) -> None:
    """End the process as SIGTERM's default would, unless it has ended ``seconds`` from now."""
    try:
        timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
        timer.daemon = True
        timer.start()
    except Exception:  # no thread can start here: the process is left to end by itself
        logger.debug("posthog_otel: could not bound the wait after SIGTERM", exc_info=True)


def sigterm_handler_installed() -> bool:
    return signal.getsignal(signal.SIGTERM) is _on_sigterm if hasattr(signal, "SIGTERM") else False
