"""The flag file of ``posthog-otel server --flags``: PostHog's definitions format (what
``/flags/definitions`` returns), or the simple ``{"flag_key": value}``.

In the simple format a value is ``true``/``false`` (the flag is on or off) or a string (the
variant name). Anything else is refused when the file is loaded, with a message naming the
flag, rather than answered in some surprising way later.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Union

FlagValue = Union[bool, str]

_SHAPE = (
    'it should map flag keys to true, false or a variant name, e.g. {"new_dashboard": true, "checkout": "test"}, '
    "or hold PostHog's flag definitions"
)


class FlagFileError(ValueError):
    """The flag file cannot be used; the message says why and what to do."""


def load_flag_file(path: Union[str, Path]) -> Dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FlagFileError("flag file %s not found: create it (%s) or leave out --flags" % (path, _SHAPE)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise FlagFileError("cannot read the flag file %s (%s)" % (path, _reason(error))) from None
    try:
        flags = json.loads(text)
    except ValueError as error:
        raise FlagFileError("flag file %s is not valid JSON (%s): %s" % (path, error, _SHAPE)) from None
    if not isinstance(flags, dict):
        raise FlagFileError("flag file %s holds a JSON %s: %s" % (path, _kind(flags), _SHAPE))
    if isinstance(flags.get("flags"), list):  # PostHog's own format
        from .flags import definitions_from

        try:
            definitions_from(flags)
        except ValueError as error:
            raise FlagFileError("flag file %s: %s" % (path, error)) from None
        return flags
    for key, value in flags.items():
        if not isinstance(value, (bool, str)):
            raise FlagFileError(
                "flag file %s: flag %r is %s (%s): use true or false, or a variant name as a string"
                % (path, key, json.dumps(value)[:40], _kind(value))
            )
    return flags


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "number"
    kinds: Dict[type, str] = {dict: "object", list: "array", str: "string"}
    return kinds.get(type(value), type(value).__name__)


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)
