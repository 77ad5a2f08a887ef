"""posthog_otel: PostHog people and groups through your OpenTelemetry pipeline.

``import posthog_otel as posthog`` and call the operations the way PostHog's SDK
documents them; each becomes an OpenTelemetry log record that ``PostHogLogExporter``
delivers to PostHog from the SDK's batch processor.
"""

from typing import TYPE_CHECKING, Any, List

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
from ._emit import alias, capture, group_identify, set, set_once
from ._exceptions import capture_exception, disable_exception_autocapture, enable_exception_autocapture
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
    "capture_exception",
    "configure",
    "disable_exception_autocapture",
    "doctor",
    "drop_counts",
    "enable_exception_autocapture",
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

#: Imported on first use (PEP 562): feature flags and the doctor bring asyncio, regular
#: expressions and the flag evaluator, which an application that only sends operations
#: should not pay for at start-up (``benchmarks/perf.py``, import time).
_LAZY = {
    "doctor": "._doctor",
    "testing": None,
    "FeatureFlagEvaluations": "._flags",
    "evaluate_flags": "._flags",
    "evaluate_flags_async": "._flags",
    "feature_enabled": "._flags",
    "feature_enabled_async": "._flags",
    "feature_flag_definitions": "._flags",
    "get_all_flags": "._flags",
    "get_all_flags_and_payloads": "._flags",
    "get_all_flags_and_payloads_async": "._flags",
    "get_all_flags_async": "._flags",
    "get_feature_flag": "._flags",
    "get_feature_flag_async": "._flags",
    "get_feature_flag_payload": "._flags",
    "get_feature_flag_payload_async": "._flags",
    "load_feature_flags": "._flags",
}

if TYPE_CHECKING:
    from . import testing
    from ._doctor import doctor
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
else:

    def __getattr__(name: str) -> Any:
        if name not in _LAZY:
            raise AttributeError("module %r has no attribute %r" % (__name__, name))
        import importlib

        module = _LAZY[name]
        if module is None:  # a submodule: ``posthog_otel.testing`` (the local server, SQLite)
            return importlib.import_module("." + name, __name__)
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value

    def __dir__() -> List[str]:
        return sorted({*globals(), *_LAZY})
