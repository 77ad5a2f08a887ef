"""Asking PostHog: ``POST {host}/flags/?v=4``, for what cannot be decided here.

The request is PostHog's SDK's: the project key in the body, no auth header, person and
group properties (each group's with its ``$group_key``), ``geoip_disable``, the device
id, and ``flag_keys_to_evaluate`` when the caller names flags. The caller is waiting (async
callers wait in a worker thread, not on their loop), so the whole read has one deadline,
``flags_timeout`` (3 s, PostHog's ``feature_flags_request_timeout_seconds``); within it a
transient failure (no answer, or 502/503/504) is retried ``flags_max_retries`` times (1, as
PostHog's SDK) after a pause of 0.3 s, doubling. Any failure is a ``RemoteFailure`` whose
``error`` is what PostHog's SDK reports as ``$feature_flag_error`` (``timeout``,
``connection_error``, ``api_error_500``, ``quota_limited``, ``unknown_error``).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
import uuid as _uuid
from typing import Any, Dict, List, Mapping, NamedTuple, Optional

from .._config import Settings
from .._log import warn_limited
from .http import FlagsHttp, HttpFailure

FLAGS_TIMEOUT = 3.0
#: Answers worth one more try (PostHog's SDK retries 502 and 504; 503 is as transient).
RETRY_STATUSES = frozenset({502, 503, 504})
#: The pause before the first retry; it doubles for each next one (PostHog's SDK: the same).
RETRY_PAUSE = 0.3


class RemoteRecord(NamedTuple):
    """One flag of a ``/flags`` answer."""

    key: str
    enabled: bool
    variant: Optional[str]
    payload: Any  # as sent: usually JSON text
    failed: bool  # PostHog could not evaluate it: it has no value
    reason: Optional[str]
    id: Any
    version: Any
    has_experiment: Optional[bool]

    @property
    def value(self) -> Any:
        return None if self.failed else (self.variant or self.enabled)


class RemoteAnswer(NamedTuple):
    records: Dict[str, RemoteRecord]
    request_id: Optional[str]
    evaluated_at: Any
    errors_while_computing: bool


class RemoteFailure(Exception):
    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error


def request_body(
    settings: Settings,
    distinct_id: str,
    groups: Mapping[str, Any],
    person_properties: Mapping[str, Any],
    group_properties: Mapping[str, Mapping[str, Any]],
    disable_geoip: Optional[bool],
    device_id: Optional[str],
    flag_keys: Optional[List[str]],
) -> Dict[str, Any]:
    body: Dict[str, Any] = {
        "distinct_id": distinct_id,
        "groups": dict(groups),
        "person_properties": dict(person_properties),
        "group_properties": {name: dict(props) for name, props in group_properties.items()},
        "geoip_disable": settings.disable_geoip if disable_geoip is None else bool(disable_geoip),
        "device_id": device_id,
    }
    if flag_keys:
        body["flag_keys_to_evaluate"] = list(flag_keys)
    body["sent_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat()
    body["api_key"] = settings.api_key
    return body


def _retry(retries: int, settings: Settings, deadline: float) -> bool:
    """Whether to try once more (after the pause, slept here): retries left, and time for one."""
    pause = RETRY_PAUSE * (2**retries)
    if retries >= settings.flags_max_retries or time.monotonic() + pause + 0.05 >= deadline:
        return False
    time.sleep(pause)
    return True


def ask(http: FlagsHttp, settings: Settings, body: Dict[str, Any], deadline: Optional[float] = None) -> RemoteAnswer:
    """POST the body to ``/flags/?v=4`` and read the answer; ``RemoteFailure`` otherwise. ``deadline``
    (monotonic) is the read's, when it began before this request (it waited for the first load):
    none left, no request (``timeout``)."""
    try:
        data = _encode(body)
    except Exception as problem:  # a value JSON cannot carry, or an object that fails when read
        warn_limited("flag:encode", "posthog_otel: cannot ask PostHog for flags: a property value JSON cannot carry "
                     "(%s)", type(problem).__name__)  # fmt: skip
        raise RemoteFailure("unknown_error", type(problem).__name__) from None
    headers = {"Content-Type": "application/json"}
    if deadline is None:
        deadline = time.monotonic() + settings.flags_timeout
    elif deadline - time.monotonic() < 0.01:
        warn_limited("flag:no_time", "posthog_otel: the flag read spent its %gs waiting for the first flag definitions "
                     "(PostHog does not answer?); not asking /flags", settings.flags_timeout)  # fmt: skip
        raise RemoteFailure("timeout", "no time left")
    retries = 0
    while True:
        try:
            answer = http.post(settings.host + "/flags/?v=4", data, headers, max(deadline - time.monotonic(), 0.001))
        except HttpFailure as failure:
            if _retry(retries, settings, deadline):
                retries += 1
                continue
            warn_limited(
                "flag:transport", "posthog_otel: could not reach %s to evaluate flags (%s)", settings.host, failure
            )
            raise RemoteFailure(failure.kind, str(failure)) from None
        if answer.status in RETRY_STATUSES and _retry(retries, settings, deadline):
            retries += 1
            continue
        break
    if answer.status != 200:
        warn_limited("flag:status", "posthog_otel: flag evaluation failed with HTTP %d", answer.status)
        raise RemoteFailure("api_error_%d" % answer.status, "HTTP %d" % answer.status)
    try:
        parsed = json.loads(answer.text)
    except ValueError:
        warn_limited("flag:body", "posthog_otel: unreadable answer from %s/flags/", settings.host)
        raise RemoteFailure("unknown_error", "unreadable answer") from None
    if not isinstance(parsed, dict):
        raise RemoteFailure("unknown_error", "the answer is not an object")
    if "feature_flags" in (parsed.get("quotaLimited") or ()):
        warn_limited("flag:quota", "posthog_otel: PostHog's feature flags quota is used up; flags have no value")
        raise RemoteFailure("quota_limited", "quota limited")
    return read_answer(parsed)


def read_answer(parsed: Dict[str, Any]) -> RemoteAnswer:
    if isinstance(parsed.get("flags"), dict):
        records = {str(key): _record(str(key), raw) for key, raw in parsed["flags"].items()}
    else:  # the answer of servers before /flags v4
        values = parsed.get("featureFlags") or {}
        payloads = parsed.get("featureFlagPayloads") or {}
        records = {
            str(key): RemoteRecord(
                str(key),
                value is not False and value is not None,
                value if isinstance(value, str) else None,
                payloads.get(key),
                False,
                None,
                None,
                None,
                None,
            )  # fmt: skip
            for key, value in values.items()
        }
    return RemoteAnswer(
        records, parsed.get("requestId"), parsed.get("evaluatedAt"), bool(parsed.get("errorsWhileComputingFlags"))
    )


def _record(key: str, raw: Any) -> RemoteRecord:
    if not isinstance(raw, dict):
        return RemoteRecord(key, False, None, None, True, None, None, None, None)
    metadata: Dict[str, Any] = raw["metadata"] if isinstance(raw.get("metadata"), dict) else {}
    reason: Dict[str, Any] = raw["reason"] if isinstance(raw.get("reason"), dict) else {}
    variant = raw.get("variant")
    has_experiment = metadata.get("has_experiment")
    return RemoteRecord(
        key=key,
        enabled=bool(raw.get("enabled")),
        variant=variant if isinstance(variant, str) else None,
        payload=metadata.get("payload"),
        failed=raw.get("failed") is True,
        reason=reason.get("description") or None,
        id=metadata.get("id"),
        version=metadata.get("version"),
        has_experiment=has_experiment if isinstance(has_experiment, bool) else None,
    )


def _encode(body: Dict[str, Any]) -> bytes:
    try:
        text = json.dumps(body, default=_json_default, allow_nan=False)
    except ValueError:  # NaN or infinity somewhere: PostHog's SDK sends null for those
        text = json.dumps(_finite(body), default=_json_default, allow_nan=False)
    return text.encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    if isinstance(value, _uuid.UUID):
        return str(value)
    raise TypeError("a %s is not JSON" % type(value).__name__)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
