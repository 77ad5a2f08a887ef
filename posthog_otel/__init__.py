"""posthog_otel: PostHog people and groups through your OpenTelemetry pipeline.

``import posthog_otel as posthog`` and call the operations the way PostHog's SDK
documents them; each becomes an OpenTelemetry log record that ``PostHogLogExporter``
delivers to PostHog from the SDK's batch processor.
"""

import sys
import types
from typing import TYPE_CHECKING, Any, List, Optional

from . import _module, _options
from ._config import Settings
from ._context import (
    get_context_device_id,
    get_context_distinct_id,
    get_context_session_id,
    get_tags,
    identify_context,
    new_context,
    scoped,
    set_context_device_id,
    set_context_session,
    tag,
)
from ._delivery.retry import RetryPolicy
from ._emit import alias, capture, capture_exception, group_identify, set, set_once, unset
from ._exporter import PostHogLogExporter, PostHogSpanExporter
from ._hooks import DeliveryError
from ._log import drop_counts
from ._setup import Pipeline, PostHogLogRecordProcessor, configure, flush, join, setup, shutdown
from ._version import __version__

# PostHog's options as module attributes, with PostHog's defaults: ``posthog.api_key = 'phc_...'``,
# ``posthog.host``, ``posthog.disabled = True``, ``posthog.before_send = scrub``... Each assignment
# is checked as it runs (see ``_module``); ``configure()`` is the explicit way.
api_key: Optional[str] = None
host: Optional[str] = None
personal_api_key: Optional[str] = None
secret_key: Optional[str] = None
project_api_key: Optional[str] = None
debug = False
send = True
disabled = False
sync_mode = False
on_error: Any = None
before_send: Any = None
super_properties: Any = None
default_client: Any = None
globals().update({o.name: o.default for o in _options.OPTIONS if o.module and o.name not in globals()})

__all__ = [
    "Client",
    "DeliveryError",
    "FeatureFlagEvaluationRuntime",
    "FeatureFlagEvaluations",
    "FeatureFlagResult",
    "Pipeline",
    "PostHogLogExporter",
    "PostHogContextLogRecordProcessor",
    "PostHogContextSpanProcessor",
    "PostHogLogRecordProcessor",
    "PostHogSpanExporter",
    "Posthog",
    "RetryPolicy",
    "Settings",
    "__version__",
    "alias",
    "capture",
    "capture_exception",
    "configure",
    "doctor",
    "drop_counts",
    "evaluate_flags",
    "evaluate_flags_async",
    "feature_enabled",
    "feature_enabled_async",
    "feature_flag_definitions",
    "flush",
    "get_all_flags",
    "get_all_flags_and_payloads",
    "get_all_flags_and_payloads_async",
    "get_all_flags_async",
    "get_context_device_id",
    "get_context_distinct_id",
    "get_context_session_id",
    "get_feature_flag",
    "get_feature_flag_async",
    "get_feature_flag_evaluation_runtime",
    "get_feature_flag_keys_by_evaluation_runtime",
    "get_feature_flag_payload",
    "get_feature_flag_payload_async",
    "get_feature_flag_result",
    "get_feature_flag_result_async",
    "get_remote_config_payload",
    "get_tags",
    "group_identify",
    "identify_context",
    "join",
    "load_feature_flags",
    "new_context",
    "override_feature_flags",
    "scoped",
    "set",
    "set_context_device_id",
    "set_context_session",
    "set_once",
    "setup",
    "shutdown",
    "tag",
    "unset",
]

#: Imported on first use (PEP 562): feature flags and the doctor bring asyncio, regular
#: expressions and the flag evaluator, which an application that only sends operations
#: should not pay for at start-up (``benchmarks/perf.py``, import time).
_LAZY = {
    "PostHogContextLogRecordProcessor": "._stamping",
    "PostHogContextSpanProcessor": "._stamping",
    "Client": "._posthog",
    "Posthog": "._posthog",
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
    "FeatureFlagEvaluationRuntime": "._flags",
    "FeatureFlagResult": "._flags",
    "get_feature_flag_result_async": "._flags",
    "override_feature_flags": "._flags",
    "load_feature_flags": "._flags",
    "get_feature_flag_evaluation_runtime": "._flags",
    "get_feature_flag_keys_by_evaluation_runtime": "._flags",
    "get_feature_flag_result": "._flags",
    "get_remote_config_payload": "._flags",
}

#: PostHog calls posthog-otel does not have: reaching for one says why, and what to use.
_NOT_HERE = {
    "capture_ai": "PostHog's AI capture lane is not in posthog-otel; capture() the $ai_* events instead",
    "start_span": "trace with OpenTelemetry's own tracer (opentelemetry.trace.get_tracer(...).start_as_current_span)",
    "get_active_span": "use opentelemetry.trace.get_current_span()",
    "AsyncPosthog": "not in posthog-otel: the operations never block, and the flag calls have *_async twins",
    "AsyncClient": "not in posthog-otel: the operations never block, and the flag calls have *_async twins",
    "set_capture_exception_code_variables_context": "capturing local variables on stack frames is not in posthog-otel yet",
    "set_code_variables_mask_patterns_context": "capturing local variables on stack frames is not in posthog-otel yet",
    "set_code_variables_ignore_patterns_context": "capturing local variables on stack frames is not in posthog-otel yet",
    "set_code_variables_mask_url_credentials_context": "capturing local variables on stack frames is not in posthog-otel yet",
    "set_code_variables_detect_secrets_context": "capturing local variables on stack frames is not in posthog-otel yet",
}


class _Package(types.ModuleType):
    """The package, whose attributes are PostHog's options: each assignment is checked as it
    runs (a typo or an option posthog-otel cannot honour raises, naming it)."""

    def __setattr__(self, name: str, value: Any) -> None:
        _module.assign(self, name, value)
        super().__setattr__(name, value)


if TYPE_CHECKING:
    from . import testing as testing
    from ._doctor import doctor
    from ._flags import (
        FeatureFlagEvaluationRuntime,
        FeatureFlagEvaluations,
        FeatureFlagResult,
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
        get_feature_flag_evaluation_runtime,
        get_feature_flag_keys_by_evaluation_runtime,
        get_feature_flag_payload,
        get_feature_flag_payload_async,
        get_feature_flag_result,
        get_feature_flag_result_async,
        get_remote_config_payload,
        load_feature_flags,
        override_feature_flags,
    )
    from ._posthog import Client, Posthog
    from ._stamping import PostHogContextLogRecordProcessor, PostHogContextSpanProcessor
else:

    def __getattr__(name: str) -> Any:
        if name not in _LAZY:
            if name in _NOT_HERE:
                raise AttributeError("posthog_otel has no %s: %s" % (name, _NOT_HERE[name]))
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


sys.modules[__name__].__class__ = _Package
