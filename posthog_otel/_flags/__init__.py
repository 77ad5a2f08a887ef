"""Feature flags: evaluated locally from polled definitions, asked of PostHog's ``/flags`` otherwise.

The calls are in ``api``; how a flag is decided in ``evaluator`` (with ``conditions``,
``cohorts``, ``dependencies``, ``buckets``, ``properties``, ``regex``, ``dates``, ``semver``);
definitions are read in ``definitions`` and kept fresh by ``poller``; ``remote`` asks
``/flags``; ``events`` reports ``$feature_flag_called``; ``snapshot`` is what
``evaluate_flags`` returns; ``calls`` holds PostHog 7.x's newer calls (``results`` their
types) and the overrides (``overrides``); ``cli`` is ``posthog-otel flags``.
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
from .calls import (
    get_feature_flag_evaluation_runtime,
    get_feature_flag_keys_by_evaluation_runtime,
    get_feature_flag_result,
    get_feature_flag_result_async,
    get_remote_config_payload,
    override_feature_flags,
)
from .results import FeatureFlagEvaluationRuntime, FeatureFlagResult
from .snapshot import FeatureFlagEvaluations

__all__ = [
    "FeatureFlagEvaluationRuntime",
    "FeatureFlagEvaluations",
    "FeatureFlagResult",
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
    "get_feature_flag_evaluation_runtime",
    "get_feature_flag_keys_by_evaluation_runtime",
    "get_feature_flag_payload",
    "get_feature_flag_payload_async",
    "get_feature_flag_result",
    "get_feature_flag_result_async",
    "get_remote_config_payload",
    "load_feature_flags",
    "override_feature_flags",
]
