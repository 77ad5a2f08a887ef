"""Internal diagnostics: rate-limited warnings and drop counters.

The package never raises into application code, so what goes wrong must be said in
the log and counted.  A misbehaving caller can produce the same warning thousands of
times a second; ``warn_limited`` says it once per interval per key and reports how many
were suppressed in between.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Dict, Optional, Tuple

from . import _state

logger = logging.getLogger("posthog_otel")

#: Seconds between two log lines with the same key.
WARN_INTERVAL = 60.0

_lock = threading.RLock()  # reentrant: SIGTERM's handler may warn inside a warning of the main thread
_last: Dict[str, Tuple[float, int]] = {}
_drops: "Counter[str]" = Counter()


def warn_limited(key: str, message: str, *args: object, level: int = logging.WARNING) -> None:
    """Log ``message % args`` at most once per ``WARN_INTERVAL`` seconds for ``key``."""
    now = time.monotonic()
    with _lock:
        last, suppressed = _last.get(key, (None, 0))
        if last is not None and now - last < WARN_INTERVAL:
            _last[key] = (last, suppressed + 1)
            return
        _last[key] = (now, 0)
    if suppressed:
        message += " (%d similar messages suppressed)"
        args = (*args, suppressed)
    logger.log(level, message, *args)


_attributed = threading.local()


def attribute_drops_to(counter: "Counter[str]") -> None:
    """Drops counted on the calling thread from now on also go to ``counter``: an exporter's
    threads name their exporter, so its ``stats()`` (and the gateway's per-project health) show
    its own drops, not every exporter's of the process."""
    _attributed.counter = counter


def count_drop(reason: str, n: int = 1, counter: "Optional[Counter[str]]" = None) -> None:
    """Count ``n`` dropped operations (or property values) under ``reason``: for the process,
    and for whose they were (``counter``: an emitter's; or the exporter whose thread this is)."""
    thread_counter = getattr(_attributed, "counter", None)
    with _lock:
        _drops[reason] += n
        if thread_counter is not None:
            thread_counter[reason] += n
        if counter is not None and counter is not thread_counter:
            counter[reason] += n


def copy_counter(counter: "Counter[str]") -> Dict[str, int]:
    """A copy of a counter that ``count_drop`` writes to (taken under its lock)."""
    with _lock:
        return dict(counter)


def drop_counts() -> Dict[str, int]:
    """What was dropped since the process started (or ``reset_diagnostics``), by reason."""
    with _lock:
        return dict(_drops)


@_state.at_fork
def after_fork() -> None:
    """In a forked child: a lock held by a parent thread at fork time would stay held."""
    global _lock
    _lock = threading.RLock()


_debug_handler: "logging.Handler | None" = None


def set_debug(on: bool) -> None:
    """PostHog's ``debug``: the package's DEBUG lines shown (on stderr, if logging has no handler
    yet), and errors inside the public calls raised instead of only logged."""
    global _debug_handler
    _state.debug_raises = on
    if on:
        logger.setLevel(logging.DEBUG)
        if not logging.getLogger().handlers and _debug_handler is None:
            _debug_handler = logging.StreamHandler()
            _debug_handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
            logger.addHandler(_debug_handler)
    else:
        logger.setLevel(logging.NOTSET)
        if _debug_handler is not None:
            logger.removeHandler(_debug_handler)
            _debug_handler = None


def reset_diagnostics() -> None:
    """Forget counters and rate-limit state (for tests)."""
    with _lock:
        _drops.clear()
        _last.clear()
