"""Flag answers set for tests and local development: posthog-node's ``overrideFeatureFlags``.

``override_feature_flags({"new-dashboard": True, "checkout": "variant-b"})`` and an overridden
key is answered with no evaluation, no request and no ``$feature_flag_called`` event; the others
are evaluated as usual. The forms are posthog-node's:

- ``False`` (or ``None``): clear every override;
- a list of keys: each is ``True``;
- ``{"flags": {...} or [keys] or False, "payloads": {...} or False}``: flags and payloads apart
  (a part left out keeps what it was);
- any other map: the flags' values. A value of ``None`` makes the flag unknown (answered ``None``).

A payload override answers ``get_feature_flag_payload`` for its key, overridden flag or not. The
module's calls have one set of overrides; each ``Posthog`` client has its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Dict, Optional

from .._log import warn_limited


class Overrides:
    __slots__ = ("flags", "payloads")

    def __init__(self) -> None:
        #: key -> value (True/False/variant, or None: the flag does not exist); None: no overrides.
        self.flags: Optional[Dict[str, Any]] = None
        #: key -> decoded payload; None: no overrides.
        self.payloads: Optional[Dict[str, Any]] = None

    def set(self, overrides: Any) -> None:
        """posthog-node's ``overrideFeatureFlags(overrides)`` (see the module doc); anything else is
        said and changes nothing."""
        if overrides is False or overrides is None:
            self.flags = self.payloads = None
        elif isinstance(overrides, (list, tuple)):
            self.flags = _all_true(overrides)
        elif isinstance(overrides, Mapping) and _is_options(overrides):
            if "flags" in overrides:
                flags = overrides["flags"]
                self.flags = (
                    None if flags is False else _all_true(flags) if isinstance(flags, (list, tuple)) else _keyed(flags)
                )
            if "payloads" in overrides:
                payloads = overrides["payloads"]
                self.payloads = None if payloads is False else _keyed(payloads)
        elif isinstance(overrides, Mapping):
            self.flags = _keyed(overrides)
        else:
            warn_limited("flag:overrides", "posthog_otel: override_feature_flags() takes False, a list of flag keys or "
                         "a map, not a %s; the overrides are unchanged", type(overrides).__name__)  # fmt: skip

    def flag(self, key: str) -> Any:
        """(True, value) when ``key`` is overridden, else (False, None)."""
        flags = self.flags
        if flags is not None and key in flags:
            return True, flags[key]
        return False, None

    def payload(self, key: str) -> Any:
        payloads = self.payloads
        if payloads is not None and key in payloads:
            return True, payloads[key]
        return False, None

    def apply_to_all(self, flags: Optional[Dict[str, Any]], payloads: Optional[Dict[str, Any]]) -> Any:
        """``get_all_flags*``: the evaluated answers with the overrides laid over them."""
        if self.flags is None and self.payloads is None:
            return flags, payloads
        flags = dict(flags or {})
        payloads = dict(payloads or {})
        for key, value in (self.flags or {}).items():
            if value is None:
                flags.pop(key, None)
            else:
                flags[key] = value
        payloads.update(self.payloads or {})
        return flags, payloads

    def overlay(self, records: Dict[str, Any]) -> Dict[str, Any]:
        """``evaluate_flags``: a snapshot's records with the overrides laid over them (posthog-node's
        rule: an overridden flag keeps the payload, id and version it had; None removes it)."""
        if self.flags is None and self.payloads is None:
            return records
        from .snapshot import FlagRecord

        records = dict(records)
        for key, value in (self.flags or {}).items():
            if value is None:
                records.pop(key, None)
                continue
            had = records.get(key)
            records[key] = FlagRecord(key, value is not False, value if isinstance(value, str) else None,
                                      had.payload if had else None, had.id if had else None,
                                      had.version if had else None, had.reason if had else None,
                                      had.locally_evaluated if had else False, had.has_experiment if had else None)  # fmt: skip
        for key, payload in (self.payloads or {}).items():
            if key in records:
                records[key] = records[key]._replace(payload=payload)
        return records

    @property
    def active(self) -> bool:
        return self.flags is not None or self.payloads is not None


def _is_options(value: Mapping[Any, Any]) -> bool:
    """posthog-node's rule: ``{"flags": ...}`` / ``{"payloads": ...}`` holding a list, a map or False
    are the two parts; ``{"flags": True}`` is a flag named "flags"."""
    flags, payloads = value.get("flags", 0), value.get("payloads", 0)
    return (
        flags is False
        or isinstance(flags, (list, tuple, Mapping))
        or payloads is False
        or isinstance(payloads, Mapping)
    )


def _all_true(keys: Any) -> Dict[str, Any]:
    return {key: True for key in keys if isinstance(key, str)}


def _keyed(values: Any) -> Optional[Dict[str, Any]]:
    if not isinstance(values, Mapping):
        return None
    return {key: value for key, value in values.items() if isinstance(key, str)}


#: The module's overrides (every module-level flag service uses them, across reconfigurations).
MODULE_OVERRIDES = Overrides()
