"""OpenTelemetry's attribute limits, applied before the SDK applies them.

The SDK wraps every record's attributes in ``BoundedAttributes``: past the count limit
the *oldest* attribute is evicted (``posthog.event`` goes first, and the operation is
lost), and string values past the length limit are cut (two distinct ids with the same
prefix become one person; a cut ``posthog.uuid`` is replaced, so the uuid returned to
the caller is not the one sent).  An operation the limits would alter is therefore
refused here, with a warning that names the setting, instead of being altered there.

Where the limits come from depends on the SDK:

- 1.45 (and the versions between that have provider-level limits): the provider's
  ``LogRecordLimits``, given in code or read from ``OTEL_LOGRECORD_ATTRIBUTE_*`` /
  ``OTEL_ATTRIBUTE_*`` when the provider was built; the logger keeps them.  There is no
  public accessor, so the logger's attribute is read (never written).
- 1.39: a new ``LogRecordLimits()`` per record, from ``OTEL_ATTRIBUTE_COUNT_LIMIT`` and
  ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` as they are at that moment; so are ours, cached
  per value of those two variables.  An invalid value makes that SDK fail every record;
  we drop with its message, which names the variable.
"""

from __future__ import annotations

import os
from typing import Any, Dict, NamedTuple, Optional, Tuple

from opentelemetry.sdk._logs import LogRecordLimits

from ._guard import Dropped

_COUNT_ENV = "OTEL_ATTRIBUTE_COUNT_LIMIT"
_LENGTH_ENV = "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"


class Limits(NamedTuple):
    """The limits a record's attributes will meet, and the settings that set them."""

    max_count: Optional[int]
    max_length: Optional[int]
    count_setting: str
    length_setting: str


def limits_of(limits: LogRecordLimits) -> Limits:
    if hasattr(limits, "max_log_record_attributes"):  # SDK 1.45: per-signal settings first
        return Limits(
            limits.max_log_record_attributes,
            limits.max_log_record_attribute_length,
            "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT (or OTEL_ATTRIBUTE_COUNT_LIMIT, or the LoggerProvider's log_record_limits)",
            "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT (or OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT, or the LoggerProvider's "
            "log_record_limits)",
        )
    return Limits(limits.max_attributes, limits.max_attribute_length, _COUNT_ENV, _LENGTH_ENV)


class LimitsSource:
    """Where one logger's limits come from; ``check`` is cheap on the emit path."""

    def __init__(self, logger: Any) -> None:
        fixed = getattr(logger, "_log_record_limits", None)
        self._fixed = limits_of(fixed) if isinstance(fixed, LogRecordLimits) else None
        self._by_env: Dict[Tuple[Optional[str], Optional[str]], Limits] = {}

    def current(self) -> Limits:
        if self._fixed is not None:
            return self._fixed
        key = (os.environ.get(_COUNT_ENV), os.environ.get(_LENGTH_ENV))
        limits = self._by_env.get(key)
        if limits is None:
            try:
                limits = limits_of(LogRecordLimits())
            except ValueError as error:  # the SDK raises the same for every record
                raise Dropped("invalid_otel_setting", "%s", error) from None
            if len(self._by_env) > 16:  # an application rewriting its env in a loop
                self._by_env.clear()
            self._by_env[key] = limits
        return limits

    def may_refuse(self, count: int) -> bool:
        """False when ``count`` attributes pass for certain (the usual case: no length limit and
        the count well under its limit), so that ``check`` is skipped on the emit path."""
        fixed = self._fixed
        if fixed is None:
            return True
        return fixed.max_length is not None or (fixed.max_count is not None and count > fixed.max_count)

    def check(self, attributes: Dict[str, Any]) -> None:
        """Raise ``Dropped`` when the SDK would evict or cut any of ``attributes``."""
        check(attributes, self._fixed if self._fixed is not None else self.current())


def check(attributes: Dict[str, Any], limits: Limits) -> None:
    """Raise ``Dropped`` when the SDK would evict or cut any of ``attributes`` under ``limits``."""
    if limits.max_count is not None and len(attributes) > limits.max_count:
        raise Dropped(
            "otel_attribute_limit",
            "the operation needs %d attributes but the OpenTelemetry attribute count limit is %d, so the SDK "
            "would drop some; raise %s",
            len(attributes),
            limits.max_count,
            limits.count_setting,
        )
    if limits.max_length is not None:
        for key, value in attributes.items():
            if type(value) is str and len(value) > limits.max_length:
                raise Dropped(
                    "otel_attribute_limit",
                    "%s is %d characters but the OpenTelemetry attribute value length limit is %d, so the SDK "
                    "would cut it; raise or unset %s",
                    key,
                    len(value),
                    limits.max_length,
                    limits.length_setting,
                )
