"""The public surface is small and explicit; pin it so changes are deliberate."""

from __future__ import annotations

import posthog_otel

EXPECTED = {
    "Pipeline", "PostHogLogExporter", "PostHogLogRecordProcessor", "PostHogSpanExporter", "RetryPolicy", "Settings", "__version__",
    "alias", "capture", "configure", "doctor", "drop_counts", "feature_enabled", "get_feature_flag", "get_context_distinct_id", "get_context_session_id",
    "get_tags", "group_identify", "identify_context", "new_context", "set", "set_context_session", "set_once", "tag",
    # feature flags (PostHog's calls, and their asyncio twins)
    "FeatureFlagEvaluations", "evaluate_flags", "evaluate_flags_async", "feature_enabled_async", "feature_flag_definitions",
    "get_all_flags", "get_all_flags_and_payloads", "get_all_flags_and_payloads_async", "get_all_flags_async",
    "get_feature_flag_async", "get_feature_flag_payload", "get_feature_flag_payload_async", "load_feature_flags",
    "FeatureFlagResult", "get_feature_flag_result", "get_feature_flag_result_async", "get_remote_config_payload",
    "FeatureFlagEvaluationRuntime", "get_feature_flag_evaluation_runtime", "get_feature_flag_keys_by_evaluation_runtime",
    "override_feature_flags",  # posthog-node's overrideFeatureFlags, for tests
    # the context's person and session on the application's spans and log records
    "PostHogContextSpanProcessor", "PostHogContextLogRecordProcessor",
    # PostHog's instance style, lifecycle and the rest of its context calls
    "Client", "Posthog", "DeliveryError", "flush", "join", "shutdown", "setup", "scoped", "set_context_device_id",
    "get_context_device_id",
    # error tracking (PostHog's names)
    "capture_exception",
    # person properties removed (PostHog's $unset; posthog-node's unsetPersonProperties)
    "unset",
}  # fmt: skip


def test_all_is_pinned():
    assert set(posthog_otel.__all__) == EXPECTED


def test_every_public_name_exists_and_is_documented():
    for name in posthog_otel.__all__:
        value = getattr(posthog_otel, name)
        if callable(value):
            assert value.__doc__, name


def test_package_is_typed():
    import pathlib

    assert (pathlib.Path(posthog_otel.__file__).parent / "py.typed").exists()
