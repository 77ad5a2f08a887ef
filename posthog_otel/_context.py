"""Context scopes: a default distinct id, tags and a session for every call in a block.

Scopes live in a ``contextvars.ContextVar``, so they follow threads and asyncio tasks
exactly the way contextvars do: a task or a ``contextvars.copy_context().run`` sees the
scope that was current when it was created; a plain new thread starts with none.

Semantics are PostHog's own SDK's: a scope inherits its parent's distinct id, session
and tags unless ``fresh=True``; explicit arguments to an operation always win.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional

from ._log import warn_limited


class _Scope:
    __slots__ = ("parent", "distinct_id", "session_id", "tags")

    def __init__(self, parent: Optional["_Scope"]) -> None:
        self.parent = parent
        self.distinct_id: Optional[str] = None
        self.session_id: Optional[str] = None
        self.tags: Dict[str, Any] = {}


_current: contextvars.ContextVar[Optional[_Scope]] = contextvars.ContextVar("posthog_otel_scope", default=None)


@contextmanager
def new_context(fresh: bool = False) -> Iterator[None]:
    """Open a scope for the ``with`` block.

    ``fresh=False`` (the default) inherits the enclosing scope's distinct id, session and
    tags; ``fresh=True`` starts empty.  Exceptions pass through untouched.
    """
    parent = None if fresh else _current.get()
    token = _current.set(_Scope(parent))
    try:
        yield
    finally:
        try:
            _current.reset(token)
        except ValueError:  # exited in another context (e.g. a generator moved between tasks)
            _current.set(parent)


def _scope_or_warn(call: str) -> Optional[_Scope]:
    scope = _current.get()
    if scope is None:
        warn_limited(
            "context:" + call,
            "posthog_otel.%s() was called outside `with new_context():` and has no effect",
            call,
        )
    return scope


def identify_context(distinct_id: Any) -> None:
    """Make ``distinct_id`` the default person for every operation in this scope and below."""
    scope = _scope_or_warn("identify_context")
    if scope is not None:
        scope.distinct_id = None if distinct_id is None else str(distinct_id)


def set_context_session(session_id: Any) -> None:
    """Attach ``$session_id`` to every operation in this scope and below."""
    scope = _scope_or_warn("set_context_session")
    if scope is not None:
        scope.session_id = None if session_id is None else str(session_id)


def tag(key: str, value: Any) -> None:
    """Add a property to every operation in this scope and below (explicit properties win)."""
    scope = _scope_or_warn("tag")
    if scope is not None:
        scope.tags[key] = value


def distinct_id_of(scope: Optional[_Scope]) -> Optional[str]:
    """The distinct id ``scope`` (or the nearest parent that has one) provides."""
    while scope is not None:
        if scope.distinct_id:
            return scope.distinct_id
        scope = scope.parent
    return None


def session_of(scope: Optional[_Scope]) -> Optional[str]:
    """The session id ``scope`` (or the nearest parent that has one) provides."""
    while scope is not None:
        if scope.session_id:
            return scope.session_id
        scope = scope.parent
    return None


def get_context_distinct_id() -> Optional[str]:
    """The distinct id the current scope (or the nearest parent that has one) provides."""
    return distinct_id_of(_current.get())


def get_context_session_id() -> Optional[str]:
    """The session id the current scope (or the nearest parent that has one) provides."""
    return session_of(_current.get())


def get_tags() -> Dict[str, Any]:
    """All tags in effect, nearest scope winning; a new dict the caller may change."""
    scope = _current.get()
    if scope is None:
        return {}
    if scope.parent is None:
        return dict(scope.tags)
    chain = []
    while scope is not None:
        chain.append(scope.tags)
        scope = scope.parent
    tags: Dict[str, Any] = {}
    for layer in reversed(chain):
        tags.update(layer)
    return tags


def current_scope() -> Optional[_Scope]:
    """The innermost scope, or None outside any ``new_context`` (cheap; for the emit path)."""
    return _current.get()
