"""What every operation carries besides its data: its uuid and its time.

Both come from the caller or are made here, and what the caller gets back is exactly
what is sent: a uuid in PostHog's canonical form (lowercase, hyphenated; a braced,
``urn:uuid:``, upper-case or hyphen-less uuid is accepted and rewritten), and a time
that arrives as given, including times an OpenTelemetry record cannot hold.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
import uuid as _uuid
from random import getrandbits as _getrandbits
from typing import Any, Optional, Tuple

from ._log import count_drop, warn_limited
from ._text import as_text, describe

#: An OTLP record's time is an unsigned 64-bit count of nanoseconds, and 0 means "unset":
#: times outside [1 ns, 2**64 ns) after the epoch travel in ``posthog.timestamp`` instead.
_RECORD_TIME_MAX = 2**64

_MS_MAX = 2**48 - 1  # a uuid7's clock field


def new_uuid7(time_ns: int) -> str:
    """A version-7 uuid (RFC 9562): 48 bits of milliseconds, then 74 random bits.

    Time-ordered ids are what PostHog's newer SDKs send; building the text directly costs
    less than half of ``str(uuid.uuid4())``.  ``random`` reseeds itself in a forked child, so
    parent and child never share a sequence.  The clock field cannot go below the epoch:
    an operation dated before 1970 gets the epoch there (its time is sent separately).
    """
    ms = min(max(time_ns // 1_000_000, 0), _MS_MAX)
    rand = _getrandbits(74)
    # [ms 48][7][rand 12][10][rand 62]
    return uuid_text((ms << 80) | _VERSION_AND_VARIANT | ((rand >> 62) << 64) | (rand & _LOW_62))


def new_uuid4() -> str:
    """A random (version 4) uuid, for events and personless ids that come without one.

    From ``random`` rather than ``uuid.uuid4()``'s ``os.urandom``: a third of the cost (no system
    call), and these ids need uniqueness, not secrecy. ``random`` reseeds itself in a forked
    child, so parent and child never share a sequence.
    """
    return uuid_text((_getrandbits(128) & _UUID4_KEEP) | _UUID4_SET)


def uuid_text(bits: int) -> str:
    """128 bits in a uuid's canonical text: one formatting, then the hyphens."""
    text = "%032x" % bits
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_LOW_62 = (1 << 62) - 1
_UUID4_SET = (0x4 << 76) | (0b10 << 62)  # version 4, RFC 4122 variant
_UUID4_KEEP = ((1 << 128) - 1) ^ ((0xF << 76) | (0b11 << 62))


def operation_uuid(value: Any, time_ns: int, call: str) -> str:
    """The caller's uuid in canonical form, or a new uuid7 (with a warning if one was given)."""
    try:
        if isinstance(value, _uuid.UUID):
            return str(_uuid.UUID(int=value.int))
        return str(_uuid.UUID(as_text(value)))
    except Exception:  # any text UUID() refuses, or a value that cannot even be read
        count_drop("invalid_uuid")
        warn_limited(
            "invalid_uuid:" + call,
            "posthog_otel: %s(): invalid uuid %s replaced by a new one",
            call,
            describe(value),
        )
        return new_uuid7(time_ns)


def operation_time(value: Any, call: str) -> Tuple[int, Optional[str]]:
    """(nanoseconds since the epoch, ISO text when a record's timestamp cannot hold it).

    An invalid value is now, with a warning (PostHog's SDK has no rule
    for it; dropping the whole operation over its time would lose more than it saves).
    """
    try:
        moment = _as_utc(_parse_timestamp(value))
        delta = moment - _EPOCH
        iso = moment.isoformat()
    except Exception:  # a wrong type, a bad string, or a datetime (subclass) that fails
        count_drop("invalid_timestamp")
        warn_limited(
            "invalid_timestamp:" + call,
            "posthog_otel: %s(): invalid timestamp %s, using the current time",
            call,
            describe(value),
        )
        return time.time_ns(), None
    time_ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    return time_ns, (None if 0 < time_ns < _RECORD_TIME_MAX else iso)


_DATE_ONLY = re.compile(r"\d{4}-?\d{2}-?\d{2}")
_COMPACT_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _parse_timestamp(value: Any) -> _dt.datetime:
    if type(value) is _dt.datetime:
        return value
    if isinstance(value, _dt.datetime):  # a subclass (pendulum, arrow...): its data, not its methods
        return _dt.datetime(
            value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond,
            value.tzinfo, fold=value.fold,
        )  # fmt: skip
    if isinstance(value, str):
        text = as_text(value)
        if _DATE_ONLY.fullmatch(text):
            raise ValueError("a date is not a timestamp")
        return _dt.datetime.fromisoformat(_COMPACT_OFFSET.sub(r"\1:\2", text.replace("Z", "+00:00")))
    raise TypeError("not a datetime or ISO 8601 string")


def _as_utc(moment: _dt.datetime) -> _dt.datetime:
    """PostHog's SDK rule for naive datetimes: local time if it is about now, else UTC."""
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        if 0 <= (_dt.datetime.now() - moment).total_seconds() < 5:
            moment = moment.astimezone()  # naive "now()": the system's local zone
        else:
            moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc)
