"""The process state the operations (front end) and the pipeline (back end) share.

Both sides read and write it here instead of importing each other: the switch that makes
internal errors raise, configure()'s pipeline and every live one, the module's routed
client, and the one fork hook. This module imports nothing of the package, so any module
may import it at any level.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any, Callable, List, Optional

#: Raise internal errors instead of logging them (set by this package's own test suite).
raise_internal_errors = False
#: ``posthog_otel.debug = True``: internal errors raise into the caller, as PostHog's SDK does.
debug_raises = False

#: The module's pipeline (``configure()``, or built from ``posthog_otel.api_key``), if any.
pipeline: Any = None
#: Every live pipeline (the module's, each Client's): exit, SIGTERM and fork flush their providers.
_pipelines: "weakref.WeakSet[Any]" = weakref.WeakSet()
_pipelines_lock = threading.Lock()

#: ``posthog_otel.default_client = Posthog(...)``: the client the module's functions use, or None.
default_client: Any = None

#: The module's ``capture`` (set by ``_emit`` at import): feature modules (flags) send their
#: events through it without importing the operations.
module_capture: Optional[Callable[..., Any]] = None


def add_pipeline(live: Any) -> None:
    with _pipelines_lock:
        _pipelines.add(live)


def discard_pipeline(live: Any) -> None:
    with _pipelines_lock:
        _pipelines.discard(live)


def pipelines() -> List[Any]:
    with _pipelines_lock:
        return list(_pipelines)


# --- fork --------------------------------------------------------------------------------

_after_fork: List[Callable[[], None]] = []


def at_fork(callback: Callable[[], None]) -> Callable[[], None]:
    """Run ``callback`` in every forked child, after those registered before it (a forked
    child has only the forking thread: a lock another thread held stays held, its threads
    are gone). One hook for the package: the order is the order of registration."""
    _after_fork.append(callback)
    return callback


def _in_child() -> None:
    global _pipelines_lock
    _pipelines_lock = threading.Lock()
    for callback in list(_after_fork):
        try:
            callback()
        except Exception:  # one module's failure must not keep the others from recovering
            logging.getLogger("posthog_otel").debug("posthog_otel: an after-fork step failed", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)
