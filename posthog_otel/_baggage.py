"""Identity across services, opt-in: the context's person and session in W3C baggage.

With ``propagate_identity`` on, ``identify_context`` and ``set_context_session`` also
write their ids into OpenTelemetry baggage, which the standard propagators put in the
``baggage`` header of outgoing requests (and Celery's OTel instrumentation in task
headers); on the receiving side, an operation whose scopes give no person (or session)
takes the incoming baggage's.

Off by default, and read only where it is on: baggage is a request header, so whoever
sends a request can name any person, and it reaches every downstream service, third
parties included.
"""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import quote_plus

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context

from ._config import from_environment
from ._log import count_drop, warn_limited
from ._text import Unusable, as_text, describe

#: The W3C baggage entries that carry the context's person and session between services.
DISTINCT_ID = "posthog.distinct_id"
SESSION_ID = "posthog.session_id"

#: W3C baggage's limit for one entry, key and encoded value (OTel's propagator drops longer ones).
MAX_ENTRY = 4096

#: Whether identity travels in baggage; None until first needed, then the environment's
#: ``POSTHOG_OTEL_PROPAGATE_IDENTITY``, or what a PostHog exporter was configured with.
_propagate: Optional[bool] = None


def propagating() -> bool:
    """True when ``propagate_identity`` is on for the operations of this process.

    A process that has no PostHog exporter (its records go to a Collector) still reads
    the environment variable, so a service in the middle of a chain can pass ids on.
    """
    global _propagate
    enabled = _propagate
    if enabled is None:
        enabled = _propagate = bool(from_environment("propagate_identity"))
    return enabled


def set_propagation(enabled: Optional[bool]) -> None:
    """Set by a PostHog exporter from its settings; None reads the environment again."""
    global _propagate
    _propagate = enabled


def carry(key: str, value: Optional[str]) -> None:
    """Make ``value`` this context's baggage entry ``key`` (None takes an enclosing one out).

    The context attached here is undone with the scope's own when the scope closes; a
    scope that cannot send its id must not pass an enclosing scope's on instead.  An id
    that would not arrive as itself is not carried (said, counted ``not_propagated``):
    the other service must see no person rather than another one.
    """
    if value is not None:
        problem = _would_change(key, value)
        if problem:
            count_drop("not_propagated")
            warn_limited(
                "baggage:carry:" + key,
                "posthog_otel: %s %s cannot travel in W3C baggage (%s); other services get none",
                key,
                describe(value),
                problem,
            )
            value = None
    context = otel_context.get_current()
    if value is not None:
        context = otel_baggage.set_baggage(key, value, context)
    elif otel_baggage.get_baggage(key, context) is not None:
        context = otel_baggage.remove_baggage(key, context)
    else:
        return
    otel_context.attach(context)


def _would_change(key: str, value: str) -> Optional[str]:
    """Why ``value`` would not come out of W3C baggage as it went in, or None."""
    if value != value.strip():
        return "receivers strip whitespace at its ends"
    if len(quote_plus(key)) + 1 + len(quote_plus(value)) > MAX_ENTRY:
        return "longer than baggage's %d-byte entry" % MAX_ENTRY
    return None


def without_identity(context: otel_context.Context) -> otel_context.Context:
    """``context`` without our entries: what a ``fresh`` scope starts from."""
    for key in (DISTINCT_ID, SESSION_ID):
        if otel_baggage.get_baggage(key, context) is not None:
            context = otel_baggage.remove_baggage(key, context)
    return context


def incoming(key: str) -> Optional[str]:
    """Our baggage entry ``key`` in the current context, as text; None when absent.

    The value came from outside, so the text rules apply: unusable text is said, counted
    (``invalid_baggage``) and ignored.
    """
    value: Any = otel_baggage.get_baggage(key)
    if value is None or value == "":
        return None
    try:
        return as_text(value) or None
    except Unusable as problem:
        count_drop("invalid_baggage")
        warn_limited(
            "baggage:" + key,
            "posthog_otel: the baggage entry %s %s %s; ignored",
            key,
            describe(value),
            problem,
        )
        return None


def names_a_person() -> bool:
    """Whether incoming baggage names a person (read even when propagation is off, to say so)."""
    return otel_baggage.get_baggage(DISTINCT_ID) is not None
