"""Feature flags: evaluated locally from polled definitions, asked of PostHog's ``/flags`` otherwise.

The calls are in ``api``; how a flag is decided in ``evaluator`` (with ``properties``,
``regex``, ``dates``, ``semver``); definitions are read in ``definitions`` and kept fresh
by ``poller``; ``remote`` asks ``/flags``; ``events`` reports ``$feature_flag_called``;
``snapshot`` is what ``evaluate_flags`` returns; ``cli`` is ``posthog-otel flags``.
"""

from .api import (
    evaluate_flags,
    evaluate_flags_async,
    feature_enabled,
    feature_enabled_async,
    feature_flag_definitions,
    get_all_flags,
    get_all_flags_and_payloads,
    get_all_flags_and_payloads_async,
    get_all_flags_async,
    get_feature_flag,
    get_feature_flag_async,
    get_feature_flag_payload,
    get_feature_flag_payload_async,
    load_feature_flags,
)
from .snapshot import FeatureFlagEvaluations

__all__ = [
    "FeatureFlagEvaluations",
    "evaluate_flags",
    "evaluate_flags_async",
    "feature_enabled",
    "feature_enabled_async",
    "feature_flag_definitions",
    "get_all_flags",
    "get_all_flags_and_payloads",
    "get_all_flags_and_payloads_async",
    "get_all_flags_async",
    "get_feature_flag",
    "get_feature_flag_async",
    "get_feature_flag_payload",
    "get_feature_flag_payload_async",
    "load_feature_flags",
]
