"""The process around the exporters: fork, multiprocessing children (SIGTERM: ``_sigterm``).

- **fork.** A forked child gets copies of our locks (possibly held by a parent thread at
  that instant: held forever in the child) and of what the parent still had to deliver (the
  parent delivers it). After a fork every dispatcher renews its locks and forgets the
  parent's backlog; its threads start again on the child's first operation.
- **multiprocessing children** (``Process``, ``Pool``) end with ``os._exit``: no ``atexit``,
  so the SDK's queue would die with them. A multiprocessing finalizer, registered in each
  child, flushes the SDK's queue and delivers or spools it.
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
from typing import Any, List, Optional

from opentelemetry import _logs as otel_logs

from . import _emitter, _state
from ._log import logger

#: Seconds a multiprocessing child's exit may spend delivering before spooling the rest.
CHILD_EXIT_BUDGET = 5.0

_lock = threading.Lock()
_dispatchers: "weakref.WeakSet[Any]" = weakref.WeakSet()
_hooks_installed = False


class _Anchor:
    """Something multiprocessing can hold a weak reference to."""


_anchor = _Anchor()


def register(dispatcher: Any) -> None:
    global _hooks_installed
    with _lock:
        _dispatchers.add(dispatcher)
        first, _hooks_installed = not _hooks_installed, True
    if first:
        _state.at_fork(_after_fork_in_child)  # after the modules' own steps, registered at their import
        _watch_multiprocessing()


def unregister(dispatcher: Any) -> None:
    with _lock:
        _dispatchers.discard(dispatcher)


def live() -> List[Any]:
    with _lock:
        return list(_dispatchers)


def persist_all(budget: float, stop: bool) -> None:
    """Flush the SDK's queues into our exporters, then deliver (or spool) what they hold."""
    deadline = time.monotonic() + budget
    dispatchers = live()
    if not dispatchers:
        return
    _flush_sdk_queues(dispatchers, max(deadline - time.monotonic(), 0.1))
    for dispatcher in dispatchers:
        dispatcher.finish(max(deadline - time.monotonic(), 0.0), stop=stop)


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


def _flush_sdk_queues(dispatchers: List[Any], timeout: float) -> None:
    """``force_flush`` the providers feeding us, on a helper thread waited for at most ``timeout``
    (a provider's flush may take longer). Where no thread can start (at interpreter exit on 3.12+:
    a multiprocessing child's exit), on this thread."""
    from opentelemetry import _logs, trace

    providers: List[Any] = []
    if any(d.kind == "logs" for d in dispatchers):
        providers.append(_logs.get_logger_provider())
        providers.extend(pipeline.logger_provider for pipeline in _state.pipelines())  # configure()'s, each Client's
    if any(d.kind == "traces" for d in dispatchers):
        providers.append(trace.get_tracer_provider())
    unique = {id(p): p for p in providers if callable(getattr(p, "force_flush", None))}
    if not unique:
        return

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
        work()
        return
    helper.join(timeout)


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
