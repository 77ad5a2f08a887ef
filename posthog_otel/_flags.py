"""Remote feature flags: ``feature_enabled`` and ``get_feature_flag``.

The seed's group example ends with ``posthog.feature_enabled(...)``. Evaluating a flag is a
question to PostHog, not an update, so it cannot ride the log pipeline: it is one
synchronous ``POST {host}/flags/?v=4`` on the caller's thread (3 s timeout, one attempt,
as PostHog's SDK does for remote evaluation). Its ``$feature_flag_called`` event does go
through the pipeline, deduplicated per (person, flag, value, groups) as PostHog's SDK does.

Never raises: any failure returns None with a rate-limited warning.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sys
import threading
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from . import _emit
from ._config import Settings
from ._context import current_scope
from ._http import HttpTransport, TransportError
from ._log import count_drop, logger, warn_limited

FLAGS_TIMEOUT = 3.0
FlagValue = Union[bool, str]

_transport = HttpTransport()
_reported: "OrderedDict[Tuple[Any, ...], None]" = OrderedDict()
_reported_lock = threading.Lock()
_REPORTED_MAX = 50_000


def feature_enabled(
    key: str,
    distinct_id: Any = None,
    *,
    groups: Optional[Mapping[str, Any]] = None,
    person_properties: Optional[Mapping[str, Any]] = None,
    group_properties: Optional[Mapping[str, Mapping[str, Any]]] = None,
    send_feature_flag_events: bool = True,
    disable_geoip: Optional[bool] = None,
) -> Optional[bool]:
    """Whether flag ``key`` is on for the person (a variant counts as on); None if unknown."""
    value = get_feature_flag(
        key,
        distinct_id,
        groups=groups,
        person_properties=person_properties,
        group_properties=group_properties,
        send_feature_flag_events=send_feature_flag_events,
        disable_geoip=disable_geoip,
    )
    return None if value is None else bool(value)


def get_feature_flag(
    key: str,
    distinct_id: Any = None,
    *,
    groups: Optional[Mapping[str, Any]] = None,
    person_properties: Optional[Mapping[str, Any]] = None,
    group_properties: Optional[Mapping[str, Mapping[str, Any]]] = None,
    send_feature_flag_events: bool = True,
    disable_geoip: Optional[bool] = None,
) -> Optional[FlagValue]:
    """The flag's value for the person: True/False, a variant name, or None if unknown."""
    try:
        person = _emit._resolve_id(distinct_id, current_scope())
        if person is None:
            count_drop("no_distinct_id")
            warn_limited("flag:no_id", "posthog_otel: feature flags need a distinct_id (argument or identify_context())")
            return None
        settings = _settings()
        if settings is None:
            return None
        groups = dict(groups or {})
        answer = _ask(settings, key, person, groups, person_properties, group_properties, disable_geoip)
        if answer is None:
            return None
        value, properties = answer
        if send_feature_flag_events:
            _report_called(person, key, value, groups, properties, disable_geoip)
        return value
    except Exception:
        if _emit.RAISE_INTERNAL_ERRORS:
            raise
        warn_limited("flag:internal", "posthog_otel: internal error evaluating a feature flag", level=logging.ERROR)
        return None


def _settings() -> Optional[Settings]:
    """Key and host: ``posthog_otel.api_key``/``host``, else the configured pipeline's, else the environment."""
    from . import _setup

    package = sys.modules.get("posthog_otel")
    api_key = getattr(package, "api_key", None)
    if api_key:
        return Settings.resolve(api_key=api_key, host=getattr(package, "host", None))
    if _setup._current is not None:
        return _setup._current.exporter.settings
    settings = Settings.resolve()
    if not settings.api_key:
        warn_limited("flag:no_key", "posthog_otel: feature flags need a project API key: set POSTHOG_API_KEY")
        return None
    return settings


def _ask(settings, key, person, groups, person_properties, group_properties, disable_geoip):
    body = {
        "distinct_id": person,
        "groups": groups,
        "person_properties": dict(person_properties or {}),
        "group_properties": {
            name: {"$group_key": group_key, **dict((group_properties or {}).get(name) or {})}
            for name, group_key in groups.items()
        },
        "geoip_disable": settings.disable_geoip if disable_geoip is None else bool(disable_geoip),
        "device_id": None,
        "flag_keys_to_evaluate": [key],
        "sent_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "api_key": settings.api_key,
    }
    headers = {"Content-Type": "application/json"}
    try:
        response = _transport.post(settings.host + "/flags/?v=4", json.dumps(body).encode(), headers, FLAGS_TIMEOUT)
    except TransportError as error:
        warn_limited("flag:transport", "posthog_otel: could not reach %s to evaluate flags (%s)", settings.host, error)
        return None
    if response.status != 200:
        warn_limited("flag:status", "posthog_otel: flag evaluation failed with HTTP %d", response.status)
        return None
    try:
        answer = json.loads(response.text)
        record = (answer.get("flags") or {}).get(key)
    except (ValueError, AttributeError):
        warn_limited("flag:body", "posthog_otel: unreadable answer from %s/flags/", settings.host)
        return None
    value = _value_of(record)
    properties: Dict[str, Any] = {}
    if answer.get("requestId"):
        properties["$feature_flag_request_id"] = answer["requestId"]
    if answer.get("evaluatedAt"):
        properties["$feature_flag_evaluated_at"] = answer["evaluatedAt"]
    if isinstance(record, dict):
        reason = record.get("reason") or {}
        metadata = record.get("metadata") or {}
        if isinstance(reason, dict) and reason.get("description"):
            properties["$feature_flag_reason"] = reason["description"]
        if isinstance(metadata, dict):
            if metadata.get("version"):
                properties["$feature_flag_version"] = metadata["version"]
            if metadata.get("id"):
                properties["$feature_flag_id"] = metadata["id"]
            if metadata.get("payload") is not None:
                properties["$feature_flag_payload"] = metadata["payload"]
    errors = []
    if answer.get("errorsWhileComputingFlags"):
        errors.append("errors_while_computing_flags")
    if record is None:
        errors.append("flag_missing")
    if errors:
        properties["$feature_flag_error"] = ",".join(errors)
    return value, properties


def _value_of(record: Any) -> Optional[FlagValue]:
    if not isinstance(record, dict):
        return None
    if record.get("variant") is not None:
        return str(record["variant"])
    enabled = record.get("enabled")
    return bool(enabled) if enabled is not None else None


def _report_called(person, key, value, groups, extra, disable_geoip) -> None:
    """``$feature_flag_called`` once per (person, flag, value, groups)."""
    seen = (person, key, json.dumps(value), tuple(sorted((str(k), str(v)) for k, v in groups.items())))
    with _reported_lock:
        if seen in _reported:
            return
        _reported[seen] = None
        if len(_reported) > _REPORTED_MAX:
            _reported.popitem(last=False)
    properties = {"$feature_flag": key, "$feature_flag_response": value, "locally_evaluated": False,
                  "$feature/%s" % key: value, **extra}  # fmt: skip
    _emit.capture(person, "$feature_flag_called", properties, groups=groups or None, disable_geoip=disable_geoip)
    logger.debug("reported $feature_flag_called for %s", key)
