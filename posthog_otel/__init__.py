"""posthog_otel: PostHog people and groups through your OpenTelemetry pipeline.

``import posthog_otel as posthog`` and call the operations the way PostHog's SDK
documents them; each becomes an OpenTelemetry log record that ``PostHogLogExporter``
delivers to PostHog from the SDK's batch processor.
"""

from typing import TYPE_CHECKING, Any

from ._config import Settings
from ._context import (
    get_context_distinct_id,
    get_context_session_id,
    get_tags,
    identify_context,
    new_context,
    set_context_session,
    tag,
)
from ._doctor import doctor
from ._emit import alias, capture, group_identify, set, set_once
from ._flags import (
    FeatureFlagEvaluations,
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
from ._exporter import PostHogLogExporter, PostHogSpanExporter
from ._log import drop_counts
from ._retry import RetryPolicy
from ._setup import Pipeline, PostHogLogRecordProcessor, configure
from ._version import __version__

#: The PostHog SDK's style of set-up: ``posthog.api_key = 'phc_...'`` (and optionally
#: ``posthog.host``) before the first operation configures the pipeline with them,
#: when no LoggerProvider is installed.  ``configure()`` is the explicit way.
api_key = None
host = None
#: With ``api_key``: a personal API key (or its newer name, a secret key) for local flag evaluation.
personal_api_key = None
secret_key = None

__all__ = [
    "FeatureFlagEvaluations",
    "Pipeline",
    "PostHogLogExporter",
    "PostHogLogRecordProcessor",
    "PostHogSpanExporter",
    "RetryPolicy",
    "Settings",
    "__version__",
    "alias",
    "capture",
    "configure",
    "doctor",
    "drop_counts",
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
    "get_context_distinct_id",
    "get_context_session_id",
    "get_tags",
    "group_identify",
    "identify_context",
    "load_feature_flags",
    "new_context",
    "set",
    "set_context_session",
    "set_once",
    "tag",
]

if TYPE_CHECKING:
    from . import testing
else:

    def __getattr__(name: str) -> Any:
        """``posthog_otel.testing`` on first use: it brings the local server and SQLite,
        which an application that never tests against them should not pay for."""
        if name == "testing":
            import importlib

            return importlib.import_module(".testing", __name__)
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
