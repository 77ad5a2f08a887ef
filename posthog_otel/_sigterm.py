"""SIGTERM: deliver or spool what is queued, then end as the default disposition would.

SIGTERM with Python's default disposition kills the process without ``atexit``. When nothing
else handles it, our handler delivers or spools what is queued, then restores the default and
sends the signal again, so the process ends exactly as it would have (and a ``while True: try:
... except: pass`` loop still cannot swallow it). An application's own handler is never
replaced. A process that survives its own SIGTERM (pid 1 in a container ignores it) carries on,
ready for the next.

**A SIGTERM Python has noted but not run.** Python runs a handler only in the main thread, and
only when that thread runs Python code again. A signal that lands just before the main thread
blocks in C (a pool worker going back to its task queue's lock as ``Pool.terminate()`` sends it:
one run in about forty here) is noted by Python's C-level handler, and the wait goes on, for
ever: the process that the default would have killed lives on, and ``terminate()`` waits for it
without end. So while our handler is installed a watcher thread reads the signal wake-up
descriptor (Python writes each signal's number there, whichever thread took it): a SIGTERM our
handler has not taken 50 ms later is sent again, to the main thread itself, whose wait it
interrupts (EINTR), and Python runs the handler. Should the main thread never take it (C code
that retries its wait), after ``SIGTERM_GRACE`` the watcher delivers or spools from its own
thread and ends the process (exit status 128 + 15; not pid 1, which the default leaves alone).
When the application has a wake-up descriptor of its own (asyncio's signal handlers), it is
left alone and there is no watcher;
one the application sets later (or takes away) replaces ours, and the watcher stands aside.

**The handler runs inside whatever the main thread was doing**, which may hold a lock that
delivering needs (a multiprocessing child's exit, delivering already): it persists on a thread
of its own, waited for at most ``SIGTERM_BUDGET`` and a second; if that was not enough, the
main thread goes on and that thread ends the process once it is done. A Ctrl-C raised in the
handler's wait does not cancel the SIGTERM.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, List, Optional, Tuple

from . import _log, _state
from ._lifecycle import persist_all
from ._log import logger

#: Seconds SIGTERM may spend delivering before spooling the rest (containers give 10-30 s).
SIGTERM_BUDGET = 3.0
#: Seconds a process that took SIGTERM without ending (its queues not flushed in the budget) has
#: to end by itself, delivering at its exit, before it is ended: a child's exit budget and more;
#: also how long the watcher sends a SIGTERM on to a main thread that does not take it.
SIGTERM_GRACE = 10.0
#: The first look, after a SIGTERM, whether the handler took it (then at most every second).
FIRST_LOOK = 0.05

#: Orders the watcher's resending before the handler restores the default disposition, never
#: after it (a resent signal would kill at once). Reentrant: on Python 3.9 a second SIGTERM can
#: run the handler again inside its own ``with _lock``.
_lock = threading.RLock()
#: The handler's runs so far, and as many as the watcher has seen: a SIGTERM read while the count
#: has grown since was taken (or is being taken).
_runs = 0
_seen = 0
#: The handler is running (a nested run, for the watcher's resending or a second SIGTERM, returns).
_running = False
#: SIGTERMs the watcher sent on itself: their bytes in the pipe are not new signals.
_resent = 0
#: The watcher's pipe in this process: (pid, read end, write end).
_pipe: Optional[Tuple[int, int, int]] = None


def install() -> None:
    """Handle SIGTERM where nothing else does (called in the main thread; elsewhere, no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
            _watch()
    except (ValueError, OSError, AttributeError):  # no signals here (some embedded interpreters)
        pass


def handler_installed() -> bool:
    return signal.getsignal(signal.SIGTERM) is _on_sigterm if hasattr(signal, "SIGTERM") else False


def _on_sigterm(signum: int, frame: Any) -> None:
    global _runs, _running
    mine = False
    try:
        with _lock:
            if _running:
                return  # the watcher's resending of a SIGTERM this run is taking already
            mine = _running = True  # in this order: an interrupt between the two leaves it False
            _runs += 1
        logger.debug("posthog_otel: SIGTERM taken by the handler")
        _take_sigterm()
    finally:
        if mine:  # a nested run that returned at once leaves the running one marked
            with _lock:
                _running = False


def _take_sigterm() -> None:
    # The process may be exiting already (the main thread has ended: atexit handlers run, the
    # SDK's shutdown among them, or a multiprocessing child's exit, where ``with Pool()``'s
    # SIGTERM lands). That exit delivers what is queued; this handler could not reach it without
    # risking a deadlock, and ending the process now would lose it. So the exit goes on (bounded
    # by its budgets); a second SIGTERM ends the process at once. The same when persisting did
    # not end in time (it waits for a lock the interrupted main thread holds, or a loaded
    # machine), or a Ctrl-C interrupted our wait: the process goes on, and is ended once
    # persisting ends, or after ``SIGTERM_GRACE``: whoever sent the signal may be waiting for it
    # (``Pool.terminate()`` joins its workers). Pid 1, which the default leaves alone, keeps ours.
    exiting = not threading.main_thread().is_alive()
    persisting = None if exiting else _Persisting.start(SIGTERM_BUDGET)
    interrupted: Optional[BaseException] = None
    try:
        done = persisting is not None and persisting.wait(SIGTERM_BUDGET + 1.0)
    except BaseException as error:  # another signal's handler raised in our wait (Ctrl-C)
        done, interrupted = False, error
    if done or os.getpid() != 1:
        with _lock:  # no resending after this: it would kill at once
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if done:
            os.kill(os.getpid(), signal.SIGTERM)  # end as the default disposition would have
            # Still here: the signal is ignored for us (pid 1 in a container) or blocked.
            signal.signal(signal.SIGTERM, _on_sigterm)
            _log.warn_limited(
                "sigterm_survived",
                "posthog_otel: SIGTERM did not end this process (pid %d; pid 1 ignores it unless the "
                "application handles it); queued operations were delivered or spooled and it carries on",
                os.getpid(),
            )
        else:
            logger.debug("posthog_otel: SIGTERM taken; the process ends once what is queued is delivered")
            if persisting is not None:
                persisting.end_process_when_done()
            if not exiting:
                _end_after(SIGTERM_GRACE)
    if interrupted is not None:
        raise interrupted


class _Persisting:
    """``persist_all`` on a thread of its own. The handler runs between two steps of the main
    thread, which may hold a lock that delivering needs (a multiprocessing child's exit,
    delivering already, when ``Pool.terminate()``'s SIGTERM lands): there, persisting on the
    main thread would wait for ever."""

    def __init__(self, budget: float) -> None:
        self.thread = threading.Thread(target=self._run, args=(budget,), name="posthog-otel-sigterm-persist")
        self.thread.daemon = True
        self._late = threading.Event()

    @classmethod
    def start(cls, budget: float) -> "Optional[_Persisting]":
        persisting = cls(budget)
        try:
            persisting.thread.start()
        except RuntimeError:  # no thread at interpreter shutdown: its exit delivers
            return None
        return persisting

    def wait(self, seconds: float) -> bool:
        self.thread.join(seconds)
        return not self.thread.is_alive()

    def end_process_when_done(self) -> None:
        """Told once the default disposition is back."""
        self._late.set()

    def _run(self, budget: float) -> None:
        leave_signals_to_the_main_thread()
        try:
            persist_all(budget, stop=False)
        except Exception:
            logger.debug("posthog_otel: error while persisting at SIGTERM", exc_info=True)
        if self._late.is_set() and not handler_installed():
            os.kill(os.getpid(), signal.SIGTERM)  # the default is back: end now, as it would have


def _end_after(seconds: float) -> None:
    """End the process as SIGTERM's default would, unless it has ended ``seconds`` from now."""
    if _timer(seconds, os.kill, os.getpid(), signal.SIGTERM) is None:  # the process ends by itself
        logger.debug("posthog_otel: could not bound the wait after SIGTERM")


# --- the watcher ---------------------------------------------------------------------------


def _watch() -> None:
    """Have Python write signal numbers to a pipe of ours, read by a thread of ours (main thread
    only), unless the application has a wake-up descriptor of its own (asyncio's signal
    handlers). Python has no way to read the current one but to swap it: for that instant a
    signal would wake ours; the application's is put back with Python's default
    ``warn_on_full_buffer``."""
    global _pipe
    if not hasattr(signal, "pthread_kill") or (_pipe is not None and _pipe[0] == os.getpid()):
        return
    read, write = os.pipe()
    os.set_blocking(write, False)  # Python requires it: a full pipe must not block a signal
    try:
        previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    except (ValueError, OSError):
        previous = None
    if previous != -1:  # the application's own (or none possible): leave it
        if previous is not None:
            signal.set_wakeup_fd(previous)
        os.close(read)
        os.close(write)
        return
    _pipe = (os.getpid(), read, write)
    try:
        threading.Thread(target=_read_signals, args=(read,), name="posthog-otel-sigterm", daemon=True).start()
    except RuntimeError:  # no thread at interpreter shutdown: the handler alone, as before
        logger.debug("posthog_otel: could not start the SIGTERM watcher", exc_info=True)


def _read_signals(read: int) -> None:
    global _resent, _seen
    leave_signals_to_the_main_thread()
    while True:
        try:
            numbers = os.read(read, 512)
        except OSError:
            return
        if not numbers:
            return
        with _lock:
            new = numbers.count(signal.SIGTERM)
            own = min(new, _resent)  # the bytes of our own resending
            _resent -= own
            taken, _seen = _runs != _seen, _runs
        if new - own and not taken:
            _see_it_taken()


def _see_it_taken() -> None:
    """Send the SIGTERM on to the main thread until the handler runs; if it never does, deliver
    or spool from here and end the process, as the default would have (pid 1, which the default
    leaves alone, is left alone after ``SIGTERM_GRACE``)."""
    global _resent, _seen
    pid_1 = os.getpid() == 1
    # Whatever happens below (a logging lock the stuck main thread holds...), the process ends.
    bound = None if pid_1 else _timer(SIGTERM_GRACE + SIGTERM_BUDGET + 2.0, os._exit, 128 + signal.SIGTERM)
    deadline = time.monotonic() + SIGTERM_GRACE
    pause, said = FIRST_LOOK, False
    while True:
        time.sleep(pause)
        with _lock:
            if _runs != _seen or not handler_installed():
                _seen = _runs
                if bound is not None:
                    bound.cancel()
                return
            if time.monotonic() >= deadline:
                break
            try:
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
            except (OSError, ValueError):
                break
            _resent += 1
        if not said:
            said = True
            logger.debug("posthog_otel: SIGTERM not taken by the main thread yet: sent to it again")
        pause = min(pause * 2, 1.0)
    if pid_1:
        return
    logger.warning(
        "posthog_otel: SIGTERM was not taken by the main thread within %g s (it is blocked in C code); "
        "delivering what is queued from another thread, then ending the process",
        SIGTERM_GRACE,
    )
    try:
        persist_all(SIGTERM_BUDGET, stop=True)
    finally:
        os._exit(128 + signal.SIGTERM)


def _timer(seconds: float, function: Any, *args: Any) -> Optional[threading.Timer]:
    """A daemon timer, started; None where no thread can start (interpreter shutdown)."""
    try:
        timer = threading.Timer(seconds, function, args)
        timer.daemon = True
        timer.start()
        return timer
    except RuntimeError:  # no thread at interpreter shutdown
        return None


def _after_fork_in_child() -> None:
    """The child has a copy of the parent's pipe (its signals would wake the parent's watcher)
    and no watcher thread: a pipe and a watcher of its own, or none, and then no wake-up left
    on a descriptor number the child will reuse for its next file."""
    global _lock, _running, _resent, _pipe
    _lock = threading.RLock()
    _running, _resent = False, 0
    inherited, _pipe = _pipe, None
    if inherited is None:
        return
    try:
        current = signal.set_wakeup_fd(-1)
        if current != inherited[2]:  # the application's by now: leave it
            signal.set_wakeup_fd(current)
        elif handler_installed():
            _watch()
    except (ValueError, OSError):
        pass
    finally:
        for descriptor in inherited[1:]:
            try:
                os.close(descriptor)
            except OSError:
                pass


_state.at_fork(_after_fork_in_child)


# --- signal masks ----------------------------------------------------------------------------


def leave_signals_to_the_main_thread() -> None:
    """Block SIGTERM in the calling (background) thread, so that the kernel delivers it to the
    main thread.

    A Python-level handler (ours) runs only in the main thread, and only when that thread gets
    back to Python. A SIGTERM the kernel hands to a background thread instead only sets a flag;
    if the main thread is blocked in C meanwhile (a multiprocessing pool worker waiting on a lock
    that a terminated sibling held), nothing would run the handler but the watcher's resending.
    Delivered to the main thread, the same signal interrupts that wait (EINTR) and the handler runs.
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
