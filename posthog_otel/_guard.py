"""The one guard around every public call: nothing raises into the application.

A guarded call ends in one of three ways:

- it returns normally;
- it raises ``Dropped``: the caller's input cannot be sent, so the call returns None,
  the drop is counted under its reason, and a warning says what and why, rate-limited
  per call and reason (an ``alias`` mistake is said even after a ``set`` one was);
- anything else is an internal error: counted, logged (rate-limited), None returned.
  Under this package's own test suite (``_state.raise_internal_errors``) it re-raises,
  so a bug fails a test instead of becoming a quiet drop.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Dict, Tuple, TypeVar, cast

from . import _state
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
            except Exception as error:
                failed(call, function, args, kwargs, error)
            return None

        return cast(F, wrapper)

    return decorate


def failed(
    call: str, function: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any], error: Exception
) -> None:
    """Say and count why a guarded call of ``function`` failed; re-raises internal errors under
    the test suite (and with ``debug``, as PostHog's SDK does). A method of an object with an
    emitter (the operations) counts the drop for that emitter too."""
    counter = getattr(getattr(args[0], "_emitter", None), "drops", None) if args else None
    if isinstance(error, Dropped):
        report_drop(call, error, counter)
    elif isinstance(error, TypeError) and _binding_failed(error):
        argument_error(call, function, args, kwargs, error, counter)
    else:
        internal_error(call, counter)


def _binding_failed(error: TypeError) -> bool:
    """The call itself did not fit the signature: raised in the guard's own frame, before the
    function ran a line (a TypeError from inside it is ours, an internal error)."""
    traceback = error.__traceback__
    return traceback is not None and traceback.tb_next is None


def argument_error(call: str, function: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any],
                   error: TypeError, counter: Any = None) -> None:  # fmt: skip
    """The caller's mistake, not the library's: the argument named, and the nearest valid one."""
    import difflib  # on this error path only: the import of the operations does not pay for them
    import inspect

    count_drop("invalid_argument", counter=counter)
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # pragma: no cover - every guarded function has a signature
        parameters = {}  # type: ignore[assignment]
    method = bool(parameters) and next(iter(parameters)) == "self"
    names = [
        name for name, p in parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name != "self"
    ]
    unknown = [name for name in kwargs if name not in names]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        message = "unknown keyword argument %r (%s)" % (
            name, "did you mean %s?" % close[0] if close else "it takes " + ", ".join(names)
        )  # fmt: skip
    else:
        given = len(args) - (1 if method else 0)
        message = "%d positional argument(s) given; it takes %s" % (given, ", ".join(names))
        if "multiple values" in str(error) or "missing" in str(error):
            message = str(error).split("() ", 1)[-1]
    warn_limited("argument:%s:%s" % (call, message), "posthog_otel: %s(): %s; the call is dropped", call, message)


def report_drop(call: str, drop: Dropped, counter: Any = None) -> None:
    count_drop(drop.reason, counter=counter)
    warn_limited(
        "drop:%s:%s" % (call, drop.reason),
        "posthog_otel: %s(): " + drop.message + "; the call is dropped",
        call,
        *drop.args_,
    )


def internal_error(call: str, counter: Any = None) -> None:
    """Count and log the exception being handled; re-raise it under the test suite (or ``debug``)."""
    count_drop("internal_error", counter=counter)
    if _state.debug_raises or _state.raise_internal_errors:
        raise
    warn_limited(
        "internal:" + call, "posthog_otel: internal error in %s(); the call is dropped", call, level=logging.ERROR
    )
    logger.debug("internal error in %s()", call, exc_info=True)
