"""The one rule for text that goes to PostHog: ids, event names, property keys and values.

A Python ``str`` can hold surrogate code points (``"\\udcff"``, what
``bytes.decode(errors="surrogateescape")`` makes of an undecodable byte).  They are not
Unicode text: UTF-8 cannot encode them, strict JSON readers refuse them as escapes, and
the only ways through are to replace them (``"a\\udc80"`` and ``"a\\udcff"`` both become
``"a?"``: two people merged into one) or to invent an escape (which collides with the
text that escape spells).  Neither keeps ids that differ different, so such text is
refused wherever it appears, the same way as bytes that are not UTF-8:

- an id (distinct id, alias id, group type or key, session id) or an event name:
  the operation is dropped, counted and said;
- a property key or value: that value is dropped, counted and said.

``as_text`` applies the rule and turns any value into plain ``str`` without letting an
exception from the value's own ``__str__`` reach the caller.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")

#: Why a text with surrogates is refused, for warnings.
SURROGATES = "contains surrogate code points (not Unicode text: undecodable bytes?)"


class Unusable(ValueError):
    """A value that cannot become text to send; the message says why."""


def is_sendable(text: str) -> bool:
    """True unless ``text`` holds surrogate code points.  ASCII text costs one flag read."""
    return text.isascii() or _SURROGATE.search(text) is None


def as_text(value: Any) -> str:
    """``value`` as a plain ``str`` that can be sent; raises ``Unusable`` otherwise.

    ``str`` subclasses become plain ``str`` without calling their methods; other values
    go through ``str()``, whose failure (a raising ``__str__``, an int too long to print)
    is reported as ``Unusable``, never passed on.
    """
    if type(value) is str:
        if value.isascii():  # the common case, decided by one flag of the string object
            return value
        text = value
    elif isinstance(value, str):
        text = str.__str__(value)
    else:
        try:
            text = str(value)
        except Exception as error:
            raise Unusable("cannot be turned into text (str() raised %s)" % type(error).__name__) from None
        if type(text) is not str:  # __str__ may return a str subclass
            text = str.__str__(text)
    if not is_sendable(text):
        raise Unusable(SURROGATES)
    return text


def describe(value: Any) -> str:
    """A short, safe description of a caller's value for a warning: never raises."""
    try:
        text = repr(value)
    except Exception:
        return "<a %s that cannot be shown>" % type(value).__name__
    if type(text) is not str:
        text = str.__str__(text)
    if not is_sendable(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text if len(text) <= 80 else text[:77] + "..."
