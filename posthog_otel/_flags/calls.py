"""The flag calls of PostHog's SDK 7.x beyond the classic ones, and posthog-node's overrides.

- ``get_feature_flag_result``: value, payload and reason from one read (PostHog's
  ``FeatureFlagResult``), reporting ``$feature_flag_called`` as ``get_feature_flag`` does;
- ``get_remote_config_payload``: a remote config flag's payload, decrypted by PostHog (needs the
  personal or secret key), within ``flags_timeout``;
- ``get_feature_flag_evaluation_runtime`` / ``get_feature_flag_keys_by_evaluation_runtime``: where
  loaded flags are meant to be evaluated (which to hand to a browser); from memory, no request;
- ``override_feature_flags``: answers set for tests (posthog-node's ``overrideFeatureFlags``).

None of them raises.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional
from urllib.parse import quote

from .._log import warn_limited
from .api import (
    GroupProperties,
    Groups,
    Properties,
    _drive,
    _drive_async,
    _finish_flag,
    _flag_read,
    _never_raises,
    overridden_flag,
    overridden_payload,
)
from .http import HttpFailure
from .reads import FlagRead
from .results import FeatureFlagEvaluationRuntime, FeatureFlagResult
from .service import current_service, overrides_in_effect, personal_key


@_never_raises(None)
def get_feature_flag_result(
    key: str,
    distinct_id: Any = None,
    groups: Groups = None,
    person_properties: Properties = None,
    group_properties: GroupProperties = None,
    only_evaluate_locally: bool = False,
    send_feature_flag_events: bool = True,
    disable_geoip: Optional[bool] = None,
    device_id: Optional[str] = None,
) -> Optional[FeatureFlagResult]:
    """The flag's ``FeatureFlagResult`` for the person (``enabled``, ``variant``, ``payload``,
    ``reason``; ``get_value()``), or None when unknown. Arguments and evaluation as ``get_feature_flag``."""
    found = _overridden_result(key)
    if found is not None:
        return found[0]
    read = _flag_read(key, distinct_id, groups, person_properties, group_properties, disable_geoip, device_id)
    return None if read is None else _result(_drive(read, only_evaluate_locally), send_feature_flag_events)


@_never_raises(None)
async def get_feature_flag_result_async(
    key: str,
    distinct_id: Any = None,
    groups: Groups = None,
    person_properties: Properties = None,
    group_properties: GroupProperties = None,
    only_evaluate_locally: bool = False,
    send_feature_flag_events: bool = True,
    disable_geoip: Optional[bool] = None,
    device_id: Optional[str] = None,
) -> Optional[FeatureFlagResult]:
    """``get_feature_flag_result`` for asyncio."""
    found = _overridden_result(key)
    if found is not None:
        return found[0]
    read = _flag_read(key, distinct_id, groups, person_properties, group_properties, disable_geoip, device_id)
    return None if read is None else _result(await _drive_async(read, only_evaluate_locally), send_feature_flag_events)


def _result(read: FlagRead, send_feature_flag_events: bool) -> Optional[FeatureFlagResult]:
    return _finish_flag(read, send_feature_flag_events).result()


def _overridden_result(key: Any) -> Optional[List[Optional[FeatureFlagResult]]]:
    """[the result] when overrides answer ``key`` (posthog-node: the value, the payload override)."""
    overridden, value = overridden_flag(key)
    if not overridden:
        return None
    return [FeatureFlagResult.of_value(key, value, overridden_payload(key)[1])]


@_never_raises(None)
def get_remote_config_payload(key: str) -> Any:
    """A remote config flag's payload, decrypted by PostHog: ``GET /api/projects/@current/
    feature_flags/<key>/remote_config`` with the personal (or secret) key, within ``flags_timeout``.

    What PostHog's SDK returns: the answer's JSON (for PostHog's endpoint, the payload's JSON text;
    posthog-node decodes it once more). None when disabled, without a personal key, or on failure
    (said, rate-limited).
    """
    if not isinstance(key, str) or not key:
        warn_limited("flag:remote_config:key", "posthog_otel: get_remote_config_payload() needs a flag key (text)")
        return None
    service = current_service()
    if service is None or service.disabled():
        return None
    secret = personal_key(service.settings)
    if not secret:
        warn_limited("flag:remote_config:no_key", "posthog_otel: get_remote_config_payload() needs a personal API key "
                     "(POSTHOG_PERSONAL_API_KEY or POSTHOG_SECRET_KEY); returning None")  # fmt: skip
        return None
    settings = service.settings
    url = "%s/api/projects/@current/feature_flags/%s/remote_config?token=%s" % (
        settings.host, quote(key, safe=""), quote(settings.api_key or "", safe=""))  # fmt: skip
    try:
        answer = service.http.get(url, {"Authorization": "Bearer %s" % secret}, settings.flags_timeout)
    except HttpFailure as failure:
        warn_limited("flag:remote_config:transport", "posthog_otel: could not reach %s for the remote config of %r "
                     "(%s)", settings.host, key, failure)  # fmt: skip
        return None
    if answer.status != 200:
        warn_limited("flag:remote_config:status", "posthog_otel: the remote config of %r: HTTP %d from %s", key,
                     answer.status, settings.host)  # fmt: skip
        return None
    try:
        return json.loads(answer.text)
    except ValueError:
        warn_limited("flag:remote_config:body", "posthog_otel: an unreadable remote config answer for %r", key)
        return None


@_never_raises(None)
def get_feature_flag_evaluation_runtime(key: str) -> Optional[FeatureFlagEvaluationRuntime]:
    """Where the loaded flag ``key`` is meant to be evaluated (``ALL`` when its definition says
    nothing); None when no definition of it is loaded. Never waits, never asks."""
    service = current_service()
    definitions = service.definitions() if service is not None else None
    flag = definitions.by_key.get(key) if definitions is not None else None
    return None if flag is None else FeatureFlagEvaluationRuntime.from_value(flag.raw.get("evaluation_runtime"))


@_never_raises(list)
def get_feature_flag_keys_by_evaluation_runtime(evaluation_runtime: Any) -> List[str]:
    """The keys of loaded flags that ``evaluation_runtime`` (a ``FeatureFlagEvaluationRuntime`` or
    ``"all"``/``"client"``/``"server"``) can evaluate, in loading order; ``ALL`` suits both sides.
    An unknown runtime is said and answers ``[]``."""
    try:
        wanted = FeatureFlagEvaluationRuntime(evaluation_runtime)
    except ValueError:
        warn_limited("flag:runtime", "posthog_otel: %r is not an evaluation runtime (all, client, server)",
                     evaluation_runtime)  # fmt: skip
        return []
    service = current_service()
    definitions = service.definitions() if service is not None else None
    if definitions is None:
        return []
    return [key for key, flag in definitions.by_key.items()
            if FeatureFlagEvaluationRuntime.from_value(flag.raw.get("evaluation_runtime")).matches(wanted)]  # fmt: skip


def override_feature_flags(overrides: Any) -> None:
    """Answer flags from ``overrides`` instead of evaluating them (tests, local development):
    posthog-node's ``overrideFeatureFlags``. ``False`` clears them; a list of keys makes each
    ``True``; ``{"flags": {...}, "payloads": {...}}`` sets both; another map sets the flags'
    values (``None``: the flag is unknown). An overridden flag is answered with no evaluation,
    no request and no ``$feature_flag_called``; ``get_all_flags`` and ``evaluate_flags`` lay the
    overrides over what they evaluate. The module's calls and each client have their own."""
    try:
        overrides_in_effect().set(overrides)
    except Exception:
        from .._guard import internal_error

        internal_error("override_feature_flags")
