"""The record schema: how a PostHog operation is written as an OpenTelemetry log record.

This module is the contract between the emit side and the export side; both import
their names from here and nowhere else.  ``docs/schema.md`` documents it for people
who write records by hand (stdlib ``logging``, another language, a Collector).

A record belongs to PostHog when its ``event_name`` is one of ``OPERATIONS``.
Identity and routing travel as attributes; properties travel in the body as a map,
because attributes are capped (128 keys by default) and lose keys silently past it.
"""

from __future__ import annotations

from typing import Final

#: Every operation's ``event_name`` starts with this.
NAMESPACE: Final = "posthog."

SET: Final = "posthog.set"
SET_ONCE: Final = "posthog.set_once"
GROUP_IDENTIFY: Final = "posthog.group_identify"
ALIAS: Final = "posthog.alias"
#: Remove person properties (PostHog's ``$unset``, sent as a ``$set`` event, as posthog-node's
#: ``unsetPersonProperties`` sends it). The body is the list of property names.
UNSET: Final = "posthog.unset"
CAPTURE: Final = "posthog.capture"
#: An exception for PostHog error tracking (``$exception``): ``capture_exception()``'s records,
#: and what the exporters make of OpenTelemetry's own exception records.
EXCEPTION: Final = "posthog.exception"

OPERATIONS: Final = frozenset({SET, SET_ONCE, UNSET, GROUP_IDENTIFY, ALIAS, CAPTURE, EXCEPTION})

# --- attributes -------------------------------------------------------------------

#: The person the operation is about (for ``posthog.alias``: the new, identified id).
DISTINCT_ID: Final = "posthog.distinct_id"
#: Fallbacks for the distinct id, read in this order after ``posthog.distinct_id``,
#: first on the record and then on the resource (as PostHog's own OTLP ingestion does).
DISTINCT_ID_FALLBACKS: Final = ("user.id", "enduser.id")
#: ``posthog.alias``: the id the person had before (anonymous id).
PREVIOUS_ID: Final = "posthog.previous_id"
#: The operation's uuid; PostHog deduplicates on it.
UUID: Final = "posthog.uuid"
#: ``posthog.capture``: the PostHog event name (``"$pageview"``, ``"signup_completed"``).
EVENT: Final = "posthog.event"
#: ``posthog.group_identify``: the group's type and key.
GROUP_TYPE: Final = "posthog.group_type"
GROUP_KEY: Final = "posthog.group_key"
#: ``posthog.capture``: one attribute per group, ``posthog.groups.<type> = <key>``.
GROUPS_PREFIX: Final = "posthog.groups."
#: PostHog session id (``$session_id``); ``session.id`` is read as a fallback.
SESSION_ID: Final = "posthog.session_id"
SESSION_ID_FALLBACKS: Final = ("session.id",)
#: The operation's time as ISO 8601 text, only when the record's ``timestamp`` cannot hold
#: it: OTLP times are unsigned nanoseconds after the epoch and 0 means unset, so a time at
#: or before 1970-01-01T00:00:00Z (or after 2554) travels here.  It wins over ``timestamp``.
TIMESTAMP: Final = "posthog.timestamp"
#: ``false`` lets PostHog resolve GeoIP for the event; absent or ``true`` disables it.
DISABLE_GEOIP: Final = "posthog.disable_geoip"

#: Where a record's operation name is read when its ``event_name`` is empty: the semantic
#: conventions' attribute before OTLP had the field, and what a stdlib ``logging`` call can set.
EVENT_NAME_ATTRIBUTE: Final = "event.name"

#: A per-process sequence number on every record this package emits; the exporter counts
#: the gaps, which are records the OTel SDK dropped before export (its queue was full).
SEQUENCE: Final = "posthog.seq"

#: OpenTelemetry's exception attributes (semantic conventions), on span events named
#: ``exception`` and on log records: read when the exporter's ``capture_exceptions`` is on,
#: and by a ``posthog.exception`` record whose body carries no ``$exception_list``.
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
EXCEPTION_STACKTRACE: Final = "exception.stacktrace"
EXCEPTION_PREFIX: Final = "exception."
#: The name OpenTelemetry gives a span event written by ``span.record_exception()``.
EXCEPTION_EVENT: Final = "exception"

#: Instrumentation scope name of the records this package emits.
SCOPE: Final = "posthog_otel"


def is_operation(event_name: object) -> bool:
    """True when a record's ``event_name`` names a PostHog operation."""
    return event_name in OPERATIONS
