"""Versions for the ``semver_*`` operators, read the way PostHog's ``sortableSemver`` reads them.

A version is ``major[.minor[.patch]]`` with an optional ``v`` prefix and surrounding
spaces; a pre-release or build suffix (``-rc.1``, ``+build``) is ignored; missing parts
are 0; a part with a leading zero is not a version. Ranges are half-open
``[lower, upper)``: ``~1.2.3`` is ``[1.2.3, 1.3.0)``, ``^1.2.3`` is ``[1.2.3, 2.0.0)``
(``^0.2.3`` is ``[0.2.3, 0.3.0)``, ``^0.0.3`` is ``[0.0.3, 0.0.4)``), ``1.2.*`` is
``[1.2.0, 1.3.0)``. Anything unreadable raises ValueError.
"""

from __future__ import annotations

from typing import Any, List, Tuple

Version = Tuple[int, int, int]
Range = Tuple[Version, Version]


def version(value: Any) -> Version:
    text = str(value).strip().lstrip("vV")
    core = text.split("-")[0].split("+")[0]
    parts = core.split(".")
    if not parts[0]:
        raise ValueError("not a version: %r" % (value,))
    minor = parts[1] if len(parts) > 1 else ""
    patch = parts[2] if len(parts) > 2 else ""
    return (_number(parts[0]), _number(minor) if minor else 0, _number(patch) if patch else 0)


def _number(part: str) -> int:
    if not part.isdigit() or (len(part) > 1 and part[0] == "0"):
        raise ValueError("not a version number: %r" % part)
    return int(part)


def tilde_range(value: Any) -> Range:
    major, minor, patch = version(value)
    return (major, minor, patch), (major, minor + 1, 0)


def caret_range(value: Any) -> Range:
    major, minor, patch = version(value)
    if major:
        upper = (major + 1, 0, 0)
    elif minor:
        upper = (0, minor + 1, 0)
    else:
        upper = (0, 0, patch + 1)
    return (major, minor, patch), upper


def wildcard_range(value: Any) -> Range:
    text = str(value).strip().lstrip("vV").replace("*", "").rstrip(".")
    parts: List[str] = [part for part in text.split(".") if part]
    if not parts:
        raise ValueError("not a version pattern: %r" % (value,))
    numbers = [_number(part) for part in parts[:3]]
    if len(numbers) == 1:
        return (numbers[0], 0, 0), (numbers[0] + 1, 0, 0)
    if len(numbers) == 2:
        return (numbers[0], numbers[1], 0), (numbers[0], numbers[1] + 1, 0)
    return (numbers[0], numbers[1], numbers[2]), (numbers[0], numbers[1], numbers[2] + 1)
