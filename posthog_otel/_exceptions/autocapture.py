"""PostHog's ``enable_exception_autocapture``: uncaught exceptions, of the main thread and of threads, to PostHog.

Turned on and off by the setting (``posthog_otel.enable_exception_autocapture = True``,
``configure(enable_exception_autocapture=True)``, ``Posthog(..., enable_exception_autocapture=True)``):
``enable`` and ``disable`` here. Exceptions go to the pipeline of whoever turned it on last
(the module's, or a client's).

The hooks go on top of whatever ``sys.excepthook`` / ``threading.excepthook`` were installed
and always call them afterwards, whatever happened here: the traceback is still printed,
the exit status is still the interpreter's. ``KeyboardInterrupt`` (Ctrl-C) and a thread's
``SystemExit`` are not errors and are not sent. Levels and sources are PostHog's SDK's
(``fatal``/``python.sys_excepthook``, ``error``/``python.threading_excepthook``).
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Optional

from .._guard import guarded
from .capture import capture_escaping, escaping

_MAIN = escaping("python.sys_excepthook", "onuncaughtexception", "fatal")
_THREAD = escaping("python.threading_excepthook", "onuncaughtexception", "error")


class _Hooks:
    """One installation: the hooks it replaced, and whether it still captures."""

    def __init__(self, target: Any) -> None:
        self.active = True
        self.target = target  # a client's emitter, or None: the module's
        self.previous_hook = sys.excepthook
        self.previous_thread_hook = threading.excepthook

    def hook(self, exc_type: Any, value: Any, tb: Any) -> None:
        try:
            if self.active and value is not None and not isinstance(value, KeyboardInterrupt):
                capture_escaping((exc_type, value, tb), _MAIN, self.target)
        finally:
            self.previous_hook(exc_type, value, tb)

    def thread_hook(self, args: Any) -> None:
        try:
            value = args.exc_value
            if self.active and value is not None and not isinstance(value, (SystemExit, KeyboardInterrupt)):
                capture_escaping((args.exc_type, value, args.exc_traceback), _THREAD, self.target)
        finally:
            self.previous_thread_hook(args)


_lock = threading.Lock()
_current: Optional[_Hooks] = None


@guarded("enable_exception_autocapture")
def enable(target: Any = None) -> None:
    """Send uncaught exceptions (``sys.excepthook``, ``threading.excepthook``) to PostHog, by
    ``target`` (a client's emitter; None: the module's); again: only the target changes."""
    global _current
    with _lock:
        if _current is not None and _current.active:
            _current.target = target
            return
        _current = _Hooks(target)
        sys.excepthook = _current.hook
        threading.excepthook = _current.thread_hook


@guarded("enable_exception_autocapture")
def disable() -> None:
    """Stop sending uncaught exceptions. Hooks installed since ours stay in place (ours then only
    passes on to the hooks it replaced); otherwise the replaced hooks are put back."""
    global _current
    with _lock:
        hooks, _current = _current, None
        if hooks is None:
            return
        hooks.active = False
        if sys.excepthook == hooks.hook:
            sys.excepthook = hooks.previous_hook
        if threading.excepthook == hooks.thread_hook:
            threading.excepthook = hooks.previous_thread_hook


def exception_autocapture_enabled() -> bool:
    return _current is not None and _current.active
