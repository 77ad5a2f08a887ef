"""Saying when an operation goes without a person that its caller likely had.

Inside ``with new_context(): identify_context('user_456')``, work handed to a plain thread
or a ``ThreadPoolExecutor`` (without ``opentelemetry-instrumentation-threading``) starts
with no context: its ``capture`` would go out personless, its ``set`` would be dropped.
Nothing links that thread to the one it came from, so the sign is indirect: an
operation with no scope at all, in one thread, while a scope with a person is open in
another.  Then the warning says what happened and the two ways to carry the context.
A thread that opens its own ``new_context()`` (even without a person) is taken to mean
it, and is not warned about.

The other sign: incoming W3C baggage names a person while ``propagate_identity`` is off,
so it is ignored, as it should be, but the caller may have expected otherwise.  That one
is said where a request's context opens, and in the warning of an operation dropped for
want of a person, not on every personless ``capture`` (which is the emit path).
"""

from __future__ import annotations

import threading
from typing import Any, Dict

from . import _baggage, _state
from ._log import count_drop, warn_limited

#: Open scopes that have a person of their own: ``id(scope)`` -> the thread that gave it.
_identified: Dict[int, int] = {}


def hold(scope: Any, has_person: bool) -> None:
    """Keep the registry in step with whether ``scope`` has a person of its own."""
    if has_person:
        _identified[id(scope)] = threading.get_ident()
    elif _identified:
        _identified.pop(id(scope), None)


def release(scope: Any) -> None:
    """``scope`` closed."""
    if _identified:
        _identified.pop(id(scope), None)


def _identified_elsewhere() -> bool:
    me = threading.get_ident()
    try:
        holders = tuple(_identified.values())
    except RuntimeError:  # changed while read: another thread opened or closed a scope
        return False
    return any(holder != me for holder in holders)


def left_behind(scope: Any) -> bool:
    """True for code with no scope at all while a scope with a person is open in another thread."""
    return scope is None and bool(_identified) and _identified_elsewhere()


THREAD_HINT = (
    "this thread (%r) has no context, while a `with new_context()` with a person is open in another "
    "thread; if this work was started there, its context did not follow it. Threads carry it with "
    "opentelemetry-instrumentation-threading (ThreadingInstrumentor().instrument()) or "
    "contextvars.copy_context().run(job); a `with new_context()` in the thread makes it deliberate"
)
BAGGAGE_IGNORED = (
    "names a person (posthog.distinct_id), which is ignored because propagate_identity is off "
    "(POSTHOG_OTEL_PROPAGATE_IDENTITY=true uses it; only for trusted callers)"
)


def hint(scope: Any) -> str:
    """For the warning about an operation dropped for want of a person: why it may have had one."""
    if left_behind(scope):
        return "; " + THREAD_HINT % threading.current_thread().name
    if not _baggage.propagating() and _baggage.names_a_person():
        return "; the incoming W3C baggage " + BAGGAGE_IGNORED
    return ""


def note(call: str, scope: Any) -> None:
    """An operation is sent personless (a random id) from a thread that left its context
    behind: counted (``context_not_in_thread``, the event is still sent) and said, once a
    minute at most.  Cheap when no scope with a person is open: this is on the emit path.
    """
    if left_behind(scope):
        count_drop("context_not_in_thread")
        warn_limited(
            "personless:thread:" + call,
            "posthog_otel: %s() is sent personless (a random distinct id): " + THREAD_HINT,
            call,
            threading.current_thread().name,
        )


def note_request() -> None:
    """A request's context opened: if its incoming baggage names a person while
    ``propagate_identity`` is off, say once that it is ignored (the setting working, not
    counted).  Said here, once per request at most, rather than on every operation."""
    if not _baggage.propagating() and _baggage.names_a_person():
        warn_limited("personless:baggage", "posthog_otel: a request's W3C baggage " + BAGGAGE_IGNORED)


_state.at_fork(_identified.clear)  # a forked child has only the forking thread: the rest are gone
