"""Dates for ``is_date_before`` / ``is_date_after``: absolute, and relative to now (``-7d``).

A relative date counts back from the current UTC time in hours, days, weeks, months or
years; months and years step back one at a time and clamp the day (31 March minus two
months is 28 January, through 28 February), as PostHog's SDKs agree to. Naive times
are read as UTC.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re
from typing import Any, Optional, Tuple

_RELATIVE = re.compile(r"^-?(?P<count>[0-9]+)(?P<unit>[a-z])$")
_YEAR_ONLY = re.compile(r"\d{4}")
_SPACED_OFFSET = re.compile(r" ([+-]\d{2}:\d{2})$")
_UTC = _dt.timezone.utc
_STEPS = {"h": "hours", "d": "days", "w": "weeks"}


class DateFilter:
    """A date filter's value, read once: ``moment()`` is the date it names now.

    A relative date moves with the clock and a bare year means today's date that year,
    so those are worked out at each call; any other date is fixed. ``moment()`` raises
    ValueError when the value names no date.
    """

    __slots__ = ("text", "relative", "fixed")

    def __init__(self, value: Any) -> None:
        self.text = str(value)
        self.relative = relative_step(self.text)
        self.fixed: Optional[_dt.datetime] = None
        if self.relative is None and not _YEAR_ONLY.fullmatch(self.text.strip()):
            try:
                self.fixed = aware(parse_datetime(self.text))
            except (ValueError, OverflowError):
                pass

    def moment(self) -> _dt.datetime:
        if self.fixed is not None:
            return self.fixed
        if self.relative is not None:
            moment = relative_date(*self.relative)
            if moment is not None:
                return moment
        return aware(parse_datetime(self.text))


def relative_step(text: str) -> Optional[Tuple[int, str]]:
    """(count, unit) of ``-3d``, ``12h``, ``2w``, ``6m``, ``1y``; None if the text is not one."""
    found = _RELATIVE.search(text)
    if found is None:
        return None
    count = int(found.group("count"))
    unit = found.group("unit")
    if count >= 10_000 or unit not in "hdwmy":
        return None
    return count, unit


def relative_date(count: int, unit: str) -> Optional[_dt.datetime]:
    """``count`` hours, days, weeks, months or years before now (UTC); None before year 1."""
    now = _dt.datetime.now(_UTC)
    if unit in _STEPS:
        return now - _dt.timedelta(**{_STEPS[unit]: count})
    if unit == "m":
        return _months_back(now, count)
    return _years_back(now, count)


def parse_datetime(text: str) -> _dt.datetime:
    """An ISO-8601 date or time (``Z`` and `` UTC`` suffixes too); a bare year means today's date that year."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif text.upper().endswith(" UTC"):
        text = text[:-4] + "+00:00"
    elif _YEAR_ONLY.fullmatch(text):
        today = _dt.datetime.now()
        return _dt.datetime(int(text), today.month, today.day)
    if " " in text:
        text = _SPACED_OFFSET.sub(r"\1", text)
    return _dt.datetime.fromisoformat(text)


def aware(moment: _dt.datetime) -> _dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=_UTC)


def _months_back(moment: _dt.datetime, months: int) -> Optional[_dt.datetime]:
    start = moment.year * 12 + moment.month - 1
    target = start - months
    year, month = divmod(target, 12)
    if not 1 <= year <= 9999:
        return None
    day = moment.day
    for index in range(start - 1, target - 1, -1):
        if day <= 28:  # no month is shorter: nothing can clamp any further
            break
        day = min(day, calendar.monthrange(index // 12, index % 12 + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _years_back(moment: _dt.datetime, years: int) -> Optional[_dt.datetime]:
    year = moment.year - years
    if not 1 <= year <= 9999:
        return None
    # A year before a leap year is never one, so 29 February clamps on the first step.
    day = 28 if years > 0 and (moment.month, moment.day) == (2, 29) else moment.day
    return moment.replace(year=year, day=day)
