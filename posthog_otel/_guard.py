"""The one guard around every public call: nothing raises into the application.

A guarded call ends in one of three ways:

- it returns normally;
- it raises ``Dropped``: the caller's input cannot be sent, so the call returns None,
  the drop is counted under its reason, and a warning says what and why, rate-limited
  per call and reason (an ``alias`` mistake is said even after a ``set`` one was);
- anything else is an internal error: counted, logged (rate-limited), None returned.
  Under this package's own test suite (``_emit.RAISE_INTERNAL_ERRORS``) it re-raises,
  so a bug fails a test instead of becoming a quiet drop.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, TypeVar, cast

from ._log import count_drop, logger, warn_limited

F = TypeVar("F", bound=Callable[..., Any])


class Dropped(Exception):
    """The call cannot be carried out as asked: it is dropped and counted under ``reason``.

    ``message`` (with ``args``, %-style) says what is wrong; the guard adds the call's
    name and "the call is dropped".
    """

    def __init__(self, reason: str, message: str, *args: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.args_ = args


def guarded(call: str) -> Callable[[F], F]:
    """Decorate a public function named ``call`` so that it never raises (see the module doc)."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except Dropped as drop:
                report_drop(call, drop)
            except Exception:
                internal_error(call)
            return None

        return cast(F, wrapper)

    return decorate


def report_drop(call: str, drop: Dropped) -> None:
    count_drop(drop.reason)
    warn_limited(
        "drop:%s:%s" % (call, drop.reason),
        "posthog_otel: %s(): " + drop.message + "; the call is dropped",
        call,
        *drop.args_,
    )


def internal_error(call: str) -> None:
    """Count and log the exception being handled; re-raise it under the test suite."""
    count_drop("internal_error")
    if _raise_internal_errors():
        raise
    warn_limited("internal:" + call, "posthog_otel: internal error in %s(); the call is dropped", call, level=logging.ERROR)
    logger.debug("internal error in %s()", call, exc_info=True)


def _raise_internal_errors() -> bool:
    # The switch lives in _emit, where the test suite and other modules have always set
    # and read it; imported here, on the error path only, because _emit imports us.
    from . import _emit

    return bool(_emit.RAISE_INTERNAL_ERRORS)
