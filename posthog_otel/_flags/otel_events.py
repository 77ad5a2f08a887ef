"""Flag reads as OpenTelemetry data: the ``feature_flag.evaluation`` event of OpenTelemetry's
semantic conventions (as OpenFeature's and LaunchDarkly's OTel hooks write it), on the current
span, when ``flag_evaluation_events`` is on.

Attributes: ``feature_flag.key``, ``feature_flag.provider.name`` (``PostHog``),
``feature_flag.result.value`` (the flag's value: true, false or the variant),
``feature_flag.result.variant`` (a multivariate flag's variant), ``feature_flag.result.reason``
and, when the read failed, ``error.type``. Reasons are the conventions' well-known values:
``static`` (an override), ``disabled`` (an inactive flag), ``split`` (a variant), ``targeting_match``
(on), ``default`` (off), ``error`` (no value).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from opentelemetry import trace

EVENT = "feature_flag.evaluation"
PROVIDER = "PostHog"
#: PostHog's ``$feature_flag_error`` values, as the conventions' ``error.type``.
_ERROR_TYPES = {"flag_missing": "flag_not_found", "quota_limited": "general", "timeout": "general",
                "connection_error": "general", "unknown_error": "general"}  # fmt: skip


def wanted(service: Any) -> bool:
    settings = getattr(service, "settings", None)
    return bool(getattr(settings, "flag_evaluation_events", False))


def evaluated(key: str, value: Any, reason: Optional[str] = None, error: Optional[str] = None) -> None:
    """Add the event to the current span (when recording); never raises."""
    try:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        span.add_event(EVENT, attributes(key, value, reason, error))
    except Exception:
        from .._guard import internal_error

        internal_error("feature_flag.evaluation")


def attributes(key: str, value: Any, reason: Optional[str] = None, error: Optional[str] = None) -> Dict[str, Any]:
    found: Dict[str, Any] = {"feature_flag.key": key, "feature_flag.provider.name": PROVIDER}
    if value is not None:
        found["feature_flag.result.value"] = value
        if isinstance(value, str):
            found["feature_flag.result.variant"] = value
    if value is None or error:
        first = (error or "general").split(",")[0]
        found["error.type"] = _ERROR_TYPES.get(first, "general" if not first.startswith("api_error") else "general")
    found["feature_flag.result.reason"] = reason or _reason(value)
    return found


def _reason(value: Any) -> str:
    if value is None:
        return "error"
    if isinstance(value, str):
        return "split"
    return "targeting_match" if value else "default"


def reason_of(read: Any) -> Optional[str]:
    """``disabled`` for a flag whose definition is inactive; None: the value decides."""
    flag = getattr(read, "flag", None)
    if flag is not None and read.locally and flag.raw.get("active") is False:
        return "disabled"
    return None
