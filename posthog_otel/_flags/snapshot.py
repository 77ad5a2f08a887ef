"""``evaluate_flags(...)``: every flag for one person, once, as a snapshot to branch on and attach.

``flags = posthog.evaluate_flags("user-1", person_properties={...})``, then
``flags.is_enabled("new-dashboard")`` / ``flags.get_flag("checkout")`` (each first read
reports ``$feature_flag_called``) and ``posthog.capture("user-1", "page_viewed",
flags=flags)``, which attaches ``$feature/<key>`` for every flag and
``$active_feature_flags`` (the enabled ones, sorted): the event carries the values the
code branched on, with no further request. The class and its methods are PostHog's
``FeatureFlagEvaluations``, name for name.
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Set

from .._log import logger, warn_limited
from .errors import Reason


class FlagRecord(NamedTuple):
    key: str
    enabled: bool
    variant: Optional[str]
    payload: Any  # decoded
    id: Any
    version: Any
    reason: Optional[str]
    locally_evaluated: bool
    has_experiment: Optional[bool]
    failed: bool = False  # PostHog marked it failed: it has no value

    @property
    def response(self) -> Any:
        if self.failed:
            return None
        if not self.enabled:
            return False
        return self.variant if self.variant is not None else True


#: ``report(person, key, response, properties, groups, disable_geoip, has_experiment)``
Reporter = Callable[..., None]


class FeatureFlagEvaluations:
    """A point-in-time snapshot of every flag for one distinct id (see the module doc)."""

    def __init__(
        self,
        report: Optional[Reporter],
        distinct_id: str,
        records: Mapping[str, FlagRecord],
        groups: Optional[Mapping[str, Any]] = None,
        disable_geoip: Optional[bool] = None,
        request_id: Optional[str] = None,
        evaluated_at: Any = None,
        errors_while_computing: bool = False,
        quota_limited: bool = False,
        unresolved: Optional[Mapping[str, Reason]] = None,
        accessed: Optional[Iterable[str]] = None,
    ) -> None:
        self._report = report
        self._distinct_id = distinct_id
        self._failed = {k: r for k, r in records.items() if r.failed}
        self._flags = {k: r for k, r in records.items() if not r.failed}
        self._groups = dict(groups or {})
        self._disable_geoip = disable_geoip
        self._request_id = request_id
        self._evaluated_at = evaluated_at
        self._errors_while_computing = errors_while_computing
        self._quota_limited = quota_limited
        self._unresolved: Dict[str, Reason] = dict(unresolved or {})
        self._accessed: Set[str] = set(accessed or ())

    def __repr__(self) -> str:
        return "FeatureFlagEvaluations(distinct_id=%r, flags=%r)" % (self._distinct_id, self.keys)

    def is_enabled(self, key: str, default_value: bool = False, *, send_feature_flag_events: bool = True) -> bool:
        """Whether the flag is on (a variant counts); ``default_value`` when it has no value here."""
        record = self._flags.get(key)
        self._accessed_now(key, send_feature_flag_events)
        return bool(record.enabled) if record else default_value

    def get_flag(self, key: str, *, send_feature_flag_events: bool = True) -> Any:
        """True/False, the variant name, or None when the flag has no value in this snapshot."""
        record = self._flags.get(key)
        self._accessed_now(key, send_feature_flag_events)
        return record.response if record else None

    def get_flag_payload(self, key: str) -> Any:
        """The flag's payload (decoded JSON), or None; not an access, reports nothing."""
        record = self._flags.get(key)
        return record.payload if record else None

    def only_accessed(self) -> "FeatureFlagEvaluations":
        """A copy with only the flags read so far (through ``is_enabled`` / ``get_flag``)."""
        kept = {k: self._flags[k] for k in self._accessed if k in self._flags}
        kept.update({k: self._failed[k] for k in self._accessed if k in self._failed})
        return self._copy(kept)

    def only(self, keys: List[str]) -> "FeatureFlagEvaluations":
        """A copy with only these flags; keys this snapshot does not have are dropped, with a warning."""
        kept = {k: self._flags[k] for k in keys if k in self._flags}
        missing = [k for k in keys if k not in self._flags]
        if missing:
            logger.warning("posthog_otel: FeatureFlagEvaluations.only() was given flags it does not have: %s",
                           ", ".join(missing))  # fmt: skip
        kept.update({k: self._failed[k] for k in keys if k in self._failed})
        return self._copy(kept)

    @property
    def keys(self) -> List[str]:
        """The flags that have a value in this snapshot."""
        return list(self._flags)

    @property
    def unresolved_flags(self) -> Mapping[str, Reason]:
        """Flags local evaluation left without a value (and ``/flags`` did not fill), with why."""
        return MappingProxyType(self._unresolved)

    def event_properties(self) -> Dict[str, Any]:
        """``$feature/<key>`` for every flag and ``$active_feature_flags``, for ``capture(flags=...)``."""
        properties: Dict[str, Any] = {}
        active = []
        for key, record in self._flags.items():
            properties["$feature/%s" % key] = record.response
            if record.enabled:
                active.append(key)
        if active:
            properties["$active_feature_flags"] = sorted(active)
        return properties

    # --- internals ----------------------------------------------------------------------

    def _copy(self, records: Dict[str, FlagRecord]) -> "FeatureFlagEvaluations":
        return FeatureFlagEvaluations(
            self._report, self._distinct_id, records, self._groups, self._disable_geoip, self._request_id,
            self._evaluated_at, self._errors_while_computing, self._quota_limited, accessed=self._accessed,
        )  # fmt: skip

    def _accessed_now(self, key: str, send_events: bool) -> None:
        self._accessed.add(key)
        if not send_events or not self._distinct_id or self._report is None:
            return
        record = self._flags.get(key) or self._failed.get(key)
        response = None if record is None else record.response
        properties: Dict[str, Any] = {
            "$feature_flag": key,
            "$feature_flag_response": response,
            "locally_evaluated": bool(record and record.locally_evaluated),
            "$feature/%s" % key: response,
        }
        if record is not None:
            if record.payload is not None:
                properties["$feature_flag_payload"] = record.payload
            if record.id:
                properties["$feature_flag_id"] = record.id
            if record.version:
                properties["$feature_flag_version"] = record.version
            if record.reason:
                properties["$feature_flag_reason"] = record.reason
        if self._request_id:
            properties["$feature_flag_request_id"] = self._request_id
        if self._evaluated_at and not (record and record.locally_evaluated):
            properties["$feature_flag_evaluated_at"] = self._evaluated_at
        errors = self._errors(key, record)
        if errors:
            properties["$feature_flag_error"] = ",".join(errors)
        has_experiment = record.has_experiment if record else None
        self._report(self._distinct_id, key, response, properties, self._groups, self._disable_geoip, has_experiment)

    def _errors(self, key: str, record: Optional[FlagRecord]) -> List[str]:
        errors = []
        if self._errors_while_computing:
            errors.append("errors_while_computing_flags")
        if self._quota_limited:
            errors.append("quota_limited")
        if key in self._failed:
            errors.append("evaluation_failed")
        if key in self._unresolved:
            errors.append("local_evaluation_inconclusive")
        elif record is None:
            errors.append("flag_missing")
        return errors


def attach_flags(flags: Any, properties: Any) -> Any:
    """``capture(..., flags=snapshot)``: the snapshot's properties under the caller's (which win)."""
    if not isinstance(flags, FeatureFlagEvaluations):
        warn_limited("capture:flags", "posthog_otel: capture(flags=...) takes what evaluate_flags() returns; got a %s, "
                     "ignored", type(flags).__name__)  # fmt: skip
        return properties
    extra = flags.event_properties()
    if properties is None:
        return extra
    if isinstance(properties, Mapping):
        return {**extra, **properties}
    return properties  # not a map: capture() reports that


def decode_payload(raw: Any) -> Any:
    """A payload as the caller gets it: JSON text decoded (unreadable: None), anything else as is."""
    if isinstance(raw, str):
        try:
            return json.loads(raw, parse_constant=_no_constants)
        except (ValueError, RecursionError):
            return None
    return raw


def checked_payload(raw: Any) -> Any:
    """A payload kept as JSON text, as ``get_all_flags_and_payloads`` returns them; unreadable: None."""
    if isinstance(raw, str):
        try:
            json.loads(raw, parse_constant=_no_constants)
        except (ValueError, RecursionError):
            return None
    return raw


def _no_constants(name: str) -> Any:
    raise ValueError("%s is not JSON" % name)
