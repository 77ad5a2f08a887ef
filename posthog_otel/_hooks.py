"""The application's say over events on their way out: ``super_properties``, ``before_send``, ``on_error``.

PostHog's SDK runs these on the caller's thread as it queues each event; here they run on the
exporter's thread, on the PostHog event a record became, after the mapping and before the
event is encoded, written to the spool or sent. So a scrubbing hook sees every event on every
road out (in-process exporters and the gateway alike), and nothing it removes ever touches
the disk; the caller's thread pays nothing for it.

Semantics are PostHog's (7.39.2 and later):

- ``super_properties`` are merged into every event's properties, over the event's own, before
  the hooks run; ``$is_server`` is set again after them, as PostHog does.
- ``before_send(event)`` returns the event (changed or not) or None to drop it. A list of
  hooks runs in order; None from one ends the chain. A hook that raises, or returns anything
  but a dict, drops the event. Each drop is counted (``before_send``, ``before_send_error``)
  and a failing hook is logged with its exception, rate-limited.
- The uuid returned to the caller is the one PostHog receives: a hook that changes an event's
  ``uuid`` is overruled, and told so once.
- ``on_error(error, events)`` is called on the exporter's thread when events are dropped
  undelivered (PostHog refused them for good, they are too large, the spool is off and the
  retries ran out, PostHog's Capture V1 answered ``drop``); an exception it raises is logged,
  never propagated.

Hooks are mutable per exporter (``Hooks``): a ``Client``'s attributes and the module's
``posthog_otel.before_send = ...`` change them while the pipeline runs. Exporters that no
``Client`` owns (``configure()``, ``opentelemetry-instrument``, the gateway) fall back to the
module's hooks for what their own settings leave unset.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ._log import count_drop, logger, warn_limited

Hook = Callable[[Dict[str, Any]], Any]


class DeliveryError(Exception):
    """What ``on_error`` is given: why events were dropped undelivered.

    ``reason`` is the drop counter's key (``rejected``, ``too_large``, ``delivery_failed``,
    ``server_drop``...), ``status`` the HTTP status when PostHog answered, ``detail`` what it
    said (the API key scrubbed)."""

    def __init__(self, reason: str, detail: str = "", status: Optional[int] = None) -> None:
        super().__init__("%s: %s" % (reason, detail) if detail else reason)
        self.reason = reason
        self.detail = detail
        self.status = status


class Hooks:
    """One exporter's ``super_properties``, ``before_send`` and ``on_error``; ``fallback`` (the
    module's) fills what is unset here."""

    def __init__(
        self,
        before_send: Sequence[Hook] = (),
        on_error: Optional[Callable[..., Any]] = None,
        super_properties: Optional[Dict[str, Any]] = None,
        is_server: bool = True,
        fallback: Optional["Hooks"] = None,
        environment: Optional["Hooks"] = None,
    ) -> None:
        #: Given in code (a keyword of configure(), the exporter, a client; a client's attribute).
        self.before_send: Tuple[Hook, ...] = tuple(before_send)
        self.on_error = on_error
        self.super_properties = super_properties
        self.is_server = is_server
        #: The module's (``posthog_otel.before_send = ...``), for exporters no Client owns.
        self.fallback = fallback
        #: From the environment (``POSTHOG_OTEL_BEFORE_SEND``...): the last resort, as for every setting.
        self.environment = environment

    def _layers(self) -> Tuple["Hooks", ...]:
        return tuple(layer for layer in (self, self.fallback, self.environment) if layer is not None)

    def active(self) -> Tuple[Tuple[Hook, ...], Optional[Dict[str, Any]]]:
        """(before_send hooks, super properties): code > the module's attributes > the environment."""
        hooks: Tuple[Hook, ...] = ()
        supers: Optional[Dict[str, Any]] = None
        for layer in self._layers():
            hooks = hooks or layer.before_send
            supers = layer.super_properties if supers is None else supers
        return hooks, supers

    def apply(self, events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """The events that go on, in order (the same list when there is nothing to do)."""
        hooks, supers = self.active()
        if not hooks and not supers:
            return events
        kept: List[Dict[str, Any]] = []
        for event in events:
            if supers:
                properties = event.get("properties")
                if isinstance(properties, dict):
                    properties.update(supers)
                    if self.is_server:
                        properties["$is_server"] = True
            if hooks:
                event = _run_hooks(hooks, event)  # type: ignore[assignment]
                if event is None:
                    continue
            kept.append(event)
        return kept

    def report(self, error: DeliveryError, events: Callable[[], List[Dict[str, Any]]]) -> None:
        """Tell ``on_error`` (if any) about dropped events; ``events`` decodes them only then."""
        callback = next((layer.on_error for layer in self._layers() if layer.on_error is not None), None)
        if callback is None:
            return
        try:
            batch = events()
        except Exception:  # the events could not be read back: the error still says how many
            batch = []
        try:
            with in_callback():
                callback(error, batch)
        except Exception as problem:
            warn_limited("on_error_raised", "posthog_otel: on_error raised %s: %s", type(problem).__name__, problem,
                         level=logging.ERROR)  # fmt: skip
            logger.debug("on_error raised", exc_info=True)


def _run_hooks(hooks: Sequence[Hook], event: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    uuid = event.get("uuid")
    name = event.get("event")
    for hook in hooks:
        try:
            with in_callback():
                result = hook(event)
        except Exception as problem:
            count_drop("before_send_error")
            warn_limited("before_send_raised", "posthog_otel: before_send raised %s (%s); the event %r is dropped, "
                         "as PostHog's SDK drops it", type(problem).__name__, problem, name, level=logging.ERROR)  # fmt: skip
            logger.debug("before_send raised", exc_info=True)
            return None
        if result is None:
            count_drop("before_send")
            return None
        if not isinstance(result, dict):
            count_drop("before_send_error")
            warn_limited("before_send_type", "posthog_otel: before_send returned %s, not a dict or None; the event %r "
                         "is dropped", type(result).__name__, name, level=logging.ERROR)  # fmt: skip
            return None
        event = result
    if event.get("uuid") != uuid:
        warn_limited("before_send_uuid", "posthog_otel: before_send changed an event's uuid; it keeps the one the "
                     "call returned (%s), which is the one PostHog deduplicates on", uuid)  # fmt: skip
        event["uuid"] = uuid
    if not isinstance(event.get("event"), str) or not event.get("event") or event.get("distinct_id") in (None, ""):
        count_drop("before_send_error")
        warn_limited("before_send_shape", "posthog_otel: before_send returned an event without an event name or a "
                     "distinct_id; dropped (PostHog would refuse it)", level=logging.ERROR)  # fmt: skip
        return None
    if not isinstance(event.get("properties"), dict):
        event["properties"] = {}
    return event


#: The module's hooks (``posthog_otel.before_send = ...``): the fallback of exporters no Client owns.
MODULE = Hooks()

_local = threading.local()


@contextlib.contextmanager
def in_callback() -> Iterator[None]:
    """While one of the application's hooks runs on the exporter's own thread: a ``flush()`` or
    ``shutdown()`` it calls would wait for that very thread, so they return at once (PostHog's SDK
    defers such calls)."""
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


def inside_callback(call: str) -> bool:
    """True (and said) when ``call`` is made from a hook on the exporter's thread."""
    if getattr(_local, "depth", 0):
        warn_limited("callback_reentry:" + call, "posthog_otel: %s() called from before_send or on_error, on the "
                     "exporter's own thread, returns at once: waiting there would wait for itself", call)  # fmt: skip
        return True
    return False
