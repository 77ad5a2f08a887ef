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
from typing import Any, Dict, Iterator, Optional, Tuple, Union

from ._guard import guarded
from ._log import count_drop, warn_limited
from ._text import Unusable, as_text, describe


class Refused:
    """What a scope holds for an id it was given but cannot send.

    It stops the walk up the scopes: the operations of this scope must not quietly fall
    back to the enclosing scope's person (or session), which is someone else.
    """

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


class _Scope:
    __slots__ = ("parent", "distinct_id", "session_id", "tags")

    def __init__(self, parent: Optional["_Scope"]) -> None:
        self.parent = parent
        self.distinct_id: Union[str, Refused, None] = None
        self.session_id: Union[str, Refused, None] = None
        self.tags: Dict[str, Any] = {}


_current: contextvars.ContextVar[Optional[_Scope]] = contextvars.ContextVar("posthog_otel_scope", default=None)


@contextmanager
def new_context(fresh: bool = False) -> Iterator[None]:
    """Open a scope for the ``with`` block.

    ``fresh=False`` (the default) inherits the enclosing scope's distinct id, session and
    tags; ``fresh=True`` starts empty.  Exceptions of the block pass through untouched;
    nothing of ours raises.
    """
    opened = _open_scope(fresh)
    try:
        yield
    finally:
        if opened is not None:
            _close_scope(*opened)


@guarded("new_context")
def _open_scope(fresh: Any) -> Optional[Tuple[contextvars.Token, Optional[_Scope]]]:
    parent = None if _is_fresh(fresh) else _current.get()
    return _current.set(_Scope(parent)), parent


@guarded("new_context")
def _close_scope(token: contextvars.Token, parent: Optional[_Scope]) -> None:
    try:
        _current.reset(token)
    except ValueError:  # exited in another context (e.g. a generator moved between tasks)
        _current.set(parent)


def _is_fresh(fresh: Any) -> bool:
    if fresh is True or fresh is False:
        return fresh
    try:
        return bool(fresh)
    except Exception:  # an object whose truth cannot be told (an array, a broken __bool__)
        warn_limited(
            "context:new_context:fresh",
            "posthog_otel: new_context(fresh=%s): not true or false; opening a fresh context, so nothing from "
            "the enclosing one (its person above all) is used by mistake",
            describe(fresh),
        )
        return True


def _scope_or_warn(call: str) -> Optional[_Scope]:
    scope = _current.get()
    if scope is None:
        warn_limited(
            "context:" + call,
            "posthog_otel.%s() was called outside `with new_context():` and has no effect",
            call,
        )
    return scope


@guarded("identify_context")
def identify_context(distinct_id: Any) -> None:
    """Make ``distinct_id`` the default person for every operation in this scope and below.

    A value that cannot be sent as an id (see ``docs/schema.md``) is refused with a
    warning, and the operations that would use it are dropped and counted: they do not
    fall back to an enclosing scope's person.  None clears this scope's id.
    """
    scope = _scope_or_warn("identify_context")
    if scope is not None:
        scope.distinct_id = _scope_id(
            "identify_context", "distinct id", distinct_id, "operations in this context that need a person are dropped"
        )


@guarded("set_context_session")
def set_context_session(session_id: Any) -> None:
    """Attach ``$session_id`` to every operation in this scope and below.

    A value that cannot be sent is refused with a warning and counted
    (``invalid_session_id``); operations then carry no session (not an enclosing one).
    """
    scope = _scope_or_warn("set_context_session")
    if scope is not None:
        session = _scope_id("set_context_session", "session id", session_id, "operations here carry no session")
        if isinstance(session, Refused):
            count_drop("invalid_session_id")
        scope.session_id = session


def _scope_id(call: str, what: str, value: Any, consequence: str) -> Union[str, Refused, None]:
    if value is None:
        return None
    try:
        return as_text(value)
    except Unusable as problem:
        warn_limited(
            "context:%s:invalid" % call,
            "posthog_otel: %s(): the %s %s %s; %s",
            call,
            what,
            describe(value),
            problem,
            consequence,
        )
        return Refused("%s %s" % (describe(value), problem))


@guarded("tag")
def tag(key: str, value: Any) -> None:
    """Add a property to every operation in this scope and below (explicit properties win).

    Keys are text, as property keys are (``str(key)`` for others); a key that cannot be
    text is dropped with a warning and counted.  The value is converted by each
    operation, with the rules of ``docs/schema.md``.
    """
    scope = _scope_or_warn("tag")
    if scope is None:
        return
    try:
        name = as_text(key)
    except Unusable as problem:
        count_drop("invalid_property")
        warn_limited("context:tag:key", "posthog_otel: tag(): the key %s %s; the tag is dropped", describe(key), problem)
        return
    scope.tags[name] = value


def distinct_id_of(scope: Optional[_Scope]) -> Union[str, Refused, None]:
    """The distinct id ``scope`` (or the nearest parent that has one) provides."""
    while scope is not None:
        if scope.distinct_id:
            return scope.distinct_id
        scope = scope.parent
    return None


def session_of(scope: Optional[_Scope]) -> Optional[str]:
    """The session id ``scope`` (or the nearest parent that has one) provides; a refused one is none."""
    while scope is not None:
        session = scope.session_id
        if session:
            return None if isinstance(session, Refused) else session
        scope = scope.parent
    return None


def get_context_distinct_id() -> Optional[str]:
    """The distinct id the current scope (or the nearest parent that has one) provides.

    None when there is none, or when this scope's ``identify_context`` value was refused.
    """
    found = distinct_id_of(_current.get())
    return None if isinstance(found, Refused) else found


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
