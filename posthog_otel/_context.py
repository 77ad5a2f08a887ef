"""Context scopes: a default distinct id, tags and a session for every call in a block.

A scope is a value of OpenTelemetry's context, so it goes wherever that context goes: the
code of the ``with`` block, asyncio tasks created inside it, and, with
``opentelemetry-instrumentation-threading``, threads and ``ThreadPoolExecutor`` jobs started
inside it (``contextvars.copy_context().run(job)`` does the same without the
instrumentation).  A thread that is handed no context starts with no scope.

Semantics are PostHog's own SDK's: a scope inherits its parent's distinct id, session
and tags unless ``fresh=True``; explicit arguments to an operation always win.  Across
services, opt-in, the ids also travel in W3C baggage (``_baggage``).
"""

from __future__ import annotations

import contextvars
import functools
from contextlib import contextmanager
from typing import Any, Callable, ContextManager, Dict, Iterator, NamedTuple, Optional, TypeVar, Union

from opentelemetry import context as otel_context

from . import _baggage, _personless
from ._guard import guarded
from ._log import count_drop, warn_limited
from ._options import unknown as _unknown_option
from ._text import Unusable, as_text, describe

F = TypeVar("F", bound=Callable[..., Any])


class RefusedId:
    """What a scope holds for an id it was given but cannot send.

    It stops the walk up the scopes: the operations of this scope must not quietly fall
    back to the enclosing scope's person (or session), which is someone else.
    """

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


class _Scope:
    __slots__ = ("parent", "enclosing", "distinct_id", "session_id", "device_id", "tags")

    def __init__(self, parent: Optional["_Scope"], enclosing: Optional["_Scope"]) -> None:
        #: Where ids and tags are inherited from: None for a fresh scope.
        self.parent = parent
        #: The scope that was current when this one opened (fresh or not): for closing.
        self.enclosing = enclosing
        self.distinct_id: Union[str, RefusedId, None] = None
        self.session_id: Union[str, RefusedId, None] = None
        self.device_id: Optional[str] = None
        self.tags: Dict[str, Any] = {}


class Opened(NamedTuple):
    """An entered scope, and what leaving it needs."""

    token: object
    scope: _Scope


_SCOPE = otel_context.create_key("posthog_otel.scope")


# --- scopes ------------------------------------------------------------------------------


def new_context(
    fresh: bool = False, capture_exceptions: Optional[bool] = None, client: Any = None, **unexpected: Any
) -> ContextManager[None]:
    """Open a scope for the ``with`` block.

    ``fresh=False`` (the default) inherits the enclosing scope's distinct id, session and
    tags; ``fresh=True`` starts empty (with ``propagate_identity``, also without the
    person and session of incoming baggage).  Exceptions of the block pass through
    untouched; nothing of ours raises, not even for a keyword it does not know (said and
    counted; the scope still opens, so the ``with`` block runs).

    As in PostHog's SDK, an exception escaping the block is first sent to error tracking,
    with this context's person, session and tags, when ``capture_exceptions`` is true, or
    when it is None (the default) and exception autocapture is on; by ``client`` (a
    ``Posthog``) when given, else by the module's pipeline.
    """
    if unexpected:
        count_drop("invalid_argument")
        for name in unexpected:
            warn_limited("argument:new_context:" + name, "%s; ignored, the context opens without it",
                         _unknown_option(name, "new_context()", ["fresh", "capture_exceptions", "client"]))  # fmt: skip
    return _scope_block(fresh, capture_exceptions, client)


#: Sends an exception escaping a context to PostHog when asked to (or autocapture is on): set
#: by ``_exceptions`` at its import (the package imports it first), which imports this module.
capture_escaping: Optional[Callable[[Exception, Optional[bool], Any], None]] = None


@contextmanager
def _scope_block(fresh: Any, capture_exceptions: Optional[bool], client: Any) -> Iterator[None]:
    opened = _open_scope(fresh)
    try:
        yield
    except Exception as error:
        if opened is not None and capture_exceptions is not False and capture_escaping is not None:
            capture_escaping(error, capture_exceptions, client)
        raise
    finally:
        if opened is not None:
            _close_scope(opened)


def scoped(fresh: bool = False, capture_exceptions: Optional[bool] = None, client: Any = None) -> Callable[[F], F]:
    """A decorator: each call of the function (or coroutine function) runs in ``new_context()``
    (with ``client``, PostHog's ``client.scoped()``)."""

    def decorate(function: F) -> F:
        import inspect  # here: the operations' import does not pay for it

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with new_context(fresh, capture_exceptions, client):
                    return await function(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with new_context(fresh, capture_exceptions, client):
                return function(*args, **kwargs)

        return run  # type: ignore[return-value]

    return decorate


@guarded("new_context")
def _open_scope(fresh: Any) -> Optional[Opened]:
    return enter_scope(_is_fresh(fresh))


@guarded("new_context")
def _close_scope(opened: Opened) -> None:
    exit_scope(opened)


def enter_scope(fresh: bool = False) -> Opened:
    """Make a new scope current in OTel's context (``new_context`` and the integrations,
    whose requests and tasks begin and end in separate calls)."""
    current = otel_context.get_current()
    enclosing: Optional[_Scope] = otel_context.get_value(_SCOPE, current)  # type: ignore[assignment]
    scope = _Scope(None if fresh else enclosing, enclosing)
    entered = otel_context.set_value(_SCOPE, scope, current)
    if fresh and _baggage.propagating():
        entered = _baggage.without_identity(entered)
    return Opened(otel_context.attach(entered), scope)


def exit_scope(opened: Opened) -> None:
    """Restore the context ``enter_scope`` replaced, with what ``identify_context`` added since.

    Tolerant of other code that attaches and detaches OTel contexts around ours (a task
    queue's instrumentation, whose signals may run before or after ours): if the context
    has already gone back past this scope, nothing is undone twice.
    """
    _personless.release(opened.scope)
    if not _is_within(current_scope(), opened.scope):
        return
    token: Any = opened.token
    var = getattr(token, "var", None)
    if not isinstance(var, contextvars.ContextVar):  # a runtime context other than OTel's default
        otel_context.detach(token)
        return
    try:
        var.reset(token)
    except (ValueError, RuntimeError):  # left in another context (a generator moved between tasks)
        otel_context.attach(otel_context.set_value(_SCOPE, opened.scope.enclosing))


def _is_within(scope: Optional[_Scope], outer: _Scope) -> bool:
    while scope is not None:
        if scope is outer:
            return True
        scope = scope.enclosing
    return False


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


def current_scope() -> Optional[_Scope]:
    """The innermost scope, or None outside any ``new_context`` (cheap; for the emit path)."""
    return otel_context.get_value(_SCOPE)  # type: ignore[return-value]  # (no cast(): it costs a typing lookup per call)


def _scope_or_warn(call: str) -> Optional[_Scope]:
    scope = current_scope()
    if scope is None:
        warn_limited(
            "context:" + call,
            "posthog_otel: %s() was called outside `with new_context():`; it has no effect",
            call,
        )
    return scope


# --- what a scope is told ------------------------------------------------------------------


@guarded("identify_context")
def identify_context(distinct_id: Any) -> None:
    """Make ``distinct_id`` the default person for every operation in this scope and below.

    A value that cannot be sent as an id (see ``docs/schema.md``) is refused with a
    warning, and the operations that would use it are dropped and counted: they do not
    fall back to an enclosing scope's person.  None clears this scope's id.  With
    ``propagate_identity`` the id also goes into W3C baggage (``posthog.distinct_id``).
    """
    scope = _scope_or_warn("identify_context")
    if scope is None:
        return
    scope.distinct_id = _scope_id(
        "identify_context", "distinct id", distinct_id, "operations in this context that need a person are dropped"
    )
    _personless.hold(scope, isinstance(scope.distinct_id, str) and bool(scope.distinct_id))
    if _baggage.propagating():
        person = distinct_id_of(scope)
        _baggage.carry(_baggage.DISTINCT_ID, person if isinstance(person, str) else None)


@guarded("set_context_session")
def set_context_session(session_id: Any) -> None:
    """Make ``session_id`` the ``$session_id`` of every operation in this scope and below.

    A value that cannot be sent is refused with a warning and counted
    (``invalid_session_id``); operations then carry no session (not an enclosing one).
    With ``propagate_identity`` the id also goes into W3C baggage (``posthog.session_id``).
    """
    scope = _scope_or_warn("set_context_session")
    if scope is None:
        return
    session = _scope_id("set_context_session", "session id", session_id, "operations here carry no session")
    if isinstance(session, RefusedId):
        count_drop("invalid_session_id")
    scope.session_id = session
    if _baggage.propagating():
        _baggage.carry(_baggage.SESSION_ID, session_of(scope))


def _scope_id(call: str, what: str, value: Any, consequence: str) -> Union[str, RefusedId, None]:
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
        return RefusedId("%s %s" % (describe(value), problem))


@guarded("set_context_device_id")
def set_context_device_id(device_id: Any) -> None:
    """Make ``device_id`` the device of every feature flag call in this scope and below
    (PostHog's: flag conditions on the device id, and ``/flags`` requests, use it)."""
    scope = _scope_or_warn("set_context_device_id")
    if scope is None:
        return
    device = _scope_id("set_context_device_id", "device id", device_id, "flag calls here carry no device id")
    scope.device_id = device if isinstance(device, str) else None


def get_context_device_id() -> Optional[str]:
    """The device id flag calls here use when given none (the nearest scope's), or None."""
    scope = current_scope()
    while scope is not None:
        if scope.device_id:
            return scope.device_id
        scope = scope.parent
    return None


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
        warn_limited(
            "context:tag:key", "posthog_otel: tag(): the key %s %s; the tag is dropped", describe(key), problem
        )
        return
    scope.tags[name] = value


# --- what operations see -------------------------------------------------------------------


def distinct_id_of(scope: Optional[_Scope]) -> Union[str, RefusedId, None]:
    """The distinct id ``scope`` (or the nearest parent that has one) provides."""
    while scope is not None:
        if scope.distinct_id:
            return scope.distinct_id
        scope = scope.parent
    return None


def session_of(scope: Optional[_Scope]) -> Optional[str]:
    """The session ``scope`` (or the nearest parent that has one) provides; a refused one is None."""
    while scope is not None:
        if scope.session_id:
            return scope.session_id if isinstance(scope.session_id, str) else None
        scope = scope.parent
    return None


def context_distinct_id(scope: Optional[_Scope]) -> Union[str, RefusedId, None]:
    """The person of an operation given none: the scopes', else (with ``propagate_identity``)
    the incoming baggage's, unless a fresh scope stands in between."""
    found = distinct_id_of(scope)
    if found is None and _baggage.propagating():
        return _baggage.incoming(_baggage.DISTINCT_ID)
    return found


def context_session_id(scope: Optional[_Scope]) -> Optional[str]:
    """The session an operation carries: the scopes', else (opt-in) the incoming baggage's."""
    found = session_of(scope)
    if found is None and _baggage.propagating():
        return _baggage.incoming(_baggage.SESSION_ID)
    return found


def get_context_distinct_id() -> Optional[str]:
    """The distinct id operations here use when given none.

    The current scope's (or the nearest parent's that has one); with
    ``propagate_identity``, else the incoming baggage's.  None when there is none, or
    when this scope's ``identify_context`` value was refused.
    """
    found = context_distinct_id(current_scope())
    return None if isinstance(found, RefusedId) else found


def get_context_session_id() -> Optional[str]:
    """The session id operations here carry: the current scope's (or the nearest parent's
    that has one); with ``propagate_identity``, else the incoming baggage's."""
    return context_session_id(current_scope())


def get_tags() -> Dict[str, Any]:
    """All tags in effect, nearest scope winning; a new dict the caller may change."""
    return tags_of(current_scope())


def scope_of(context: Any) -> Optional[_Scope]:
    """The scope an OTel context (a log record's, say) was emitted in, or None."""
    if context is None:
        return None
    found = otel_context.get_value(_SCOPE, context)
    return found if isinstance(found, _Scope) else None


def tags_of(scope: Optional[_Scope]) -> Dict[str, Any]:
    """The tags in effect in ``scope``, nearest winning; a new dict."""
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
