"""Property values as PostHog's flag service reads them: text, numbers, truthiness.

PostHog evaluates flags in a Rust service that sees every value as JSON. Comparisons
made here must see the same text it would: a string is itself, anything else is its
compact JSON (``True`` -> ``true``, ``[1, "a"]`` -> ``[1,"a"]``, object keys sorted),
with floats written the way that service writes them. A value JSON cannot carry (a
``datetime``, ``NaN``, a set) has no such text: whoever supplied it is to blame, the
call (``MISSING_CONTEXT``) or the definition (``UNSUPPORTED_DEFINITION``).
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any, Optional

from .errors import Reason, Undecidable

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def as_text(value: Any, blame: Reason) -> str:
    """``value`` as the flag service's text: a string unchanged, anything else as JSON."""
    if type(value) is str or isinstance(value, str):
        return value
    return _json(value, blame)


def ascii_lower(value: Any, blame: Reason) -> str:
    """Text lowered in ASCII only, as the service's case-insensitive string operators do."""
    return as_text(value, blame).translate(_ASCII_LOWER)


def _json(value: Any, blame: Reason) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return _float_text(value, blame)
    if isinstance(value, list):
        return "[%s]" % ",".join(_json(item, blame) for item in value)
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise Undecidable(blame, "an object with non-string keys has no JSON form")
        return "{%s}" % ",".join(
            "%s:%s" % (json.dumps(key, ensure_ascii=False), _json(value[key], blame)) for key in sorted(value)
        )
    raise Undecidable(blame, "a %s value has no JSON form" % type(value).__name__)


def _float_text(value: float, blame: Reason) -> str:
    """Python's shortest repr, with exponents written as the service writes them."""
    if not math.isfinite(value):
        raise Undecidable(blame, "a non-finite number has no JSON form")
    text = repr(value)
    mantissa, marker, exponent_text = text.partition("e")
    if not marker:
        return text
    exponent = int(exponent_text)
    if -6 < exponent < 0:
        return format(Decimal(text), "f")
    return "%se%s%d" % (mantissa, "+" if exponent >= 0 else "", exponent)


def as_number(value: Any) -> Optional[float]:
    """A finite number from a number or a plain numeric string; None otherwise (booleans too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not _NUMBER.fullmatch(value):
            return None
    elif not isinstance(value, (int, float, Decimal)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def is_boolean_like(value: Any) -> bool:
    """True for booleans, "true"/"false" in any case, and lists made only of those."""
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return value.lower() in ("true", "false")
    if isinstance(value, list):
        return all(is_boolean_like(item) for item in value)
    return False


def is_truthy(value: Any) -> bool:
    """True, "true" in any case, or a list whose every item is truthy (an empty list too)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() == "true"
    if isinstance(value, list):
        return all(is_truthy(item) for item in value)
    return False
