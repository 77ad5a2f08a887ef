"""An OpenFeature provider backed by posthog-otel's flags (the ``[openfeature]`` extra)::

    from openfeature import api
    from posthog_otel.integrations.openfeature import PostHogProvider

    api.set_provider(PostHogProvider())                     # the module's flags, or PostHogProvider(client)
    flags = api.get_client()
    flags.get_boolean_value("new-dashboard", False, EvaluationContext("user-1", {"plan": "pro"}))

It resolves as PostHog's official provider (``openfeature-provider-posthog``) does, through
``get_feature_flag_result``, with local evaluation when a personal key is set:

- ``targeting_key`` is the distinct id (none: the context's person, else ``default_distinct_id``,
  else ``TARGETING_KEY_MISSING``); the attributes ``groups`` and ``group_properties`` are PostHog's,
  every other attribute a person property;
- boolean: ``enabled``; string: the variant; integer and float: the variant read as a number
  (``0x10`` too); object: the payload (a JSON object or array);
- a flag PostHog does not know is ``FLAG_NOT_FOUND``; a flag that is off gives the default value
  (reason ``DEFAULT``, or ``DISABLED`` when PostHog says so), an on flag of the wrong kind
  ``TYPE_MISMATCH``; on answers are ``TARGETING_MATCH``; ``flag_metadata`` has PostHog's reason.

Where it differs: errors come back in the resolution details (``error_code``) instead of being
raised (the OpenFeature client answers the same either way); the client is optional; the async
resolvers never block the event loop.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider import AbstractProvider
from openfeature.provider.metadata import Metadata

from .. import _context
from .._flags import calls
from .._flags.results import FeatureFlagResult

GROUPS_KEY = "groups"
GROUP_PROPERTIES_KEY = "group_properties"
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")

Resolved = Union[FlagResolutionDetails[Any], FeatureFlagResult]


class PostHogProvider(AbstractProvider):
    """OpenFeature's provider for posthog-otel's flags: ``client`` (a ``posthog_otel.Posthog``)
    or, by default, the module's configuration."""

    def __init__(self, client: Any = None, *, default_distinct_id: Optional[str] = None,
                 send_feature_flag_events: bool = True) -> None:  # fmt: skip
        super().__init__()
        self._client = client
        self._default_distinct_id = default_distinct_id
        self._send_feature_flag_events = send_feature_flag_events

    def get_metadata(self) -> Metadata:
        return Metadata(name="PostHogProvider")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Load the flag definitions (within ``flags_timeout``; remote evaluation works meanwhile)."""
        if self._client is not None:
            self._client.load_feature_flags()
        else:
            from .._flags import api

            api.load_feature_flags()

    def shutdown(self) -> None:
        """The client is the application's: nothing to stop here."""

    # --- the typed resolvers ---------------------------------------------------------------

    def resolve_boolean_details(self, flag_key: str, default_value: bool,
                                evaluation_context: Optional[EvaluationContext] = None) -> FlagResolutionDetails[bool]:  # fmt: skip
        return _boolean(self._resolve(flag_key, evaluation_context), default_value)

    def resolve_string_details(self, flag_key: str, default_value: str,
                               evaluation_context: Optional[EvaluationContext] = None) -> FlagResolutionDetails[str]:  # fmt: skip
        return _string(self._resolve(flag_key, evaluation_context), default_value)

    def resolve_integer_details(self, flag_key: str, default_value: int,
                                evaluation_context: Optional[EvaluationContext] = None) -> FlagResolutionDetails[int]:  # fmt: skip
        return _number(self._resolve(flag_key, evaluation_context), default_value, int)

    def resolve_float_details(self, flag_key: str, default_value: float,
                              evaluation_context: Optional[EvaluationContext] = None) -> FlagResolutionDetails[float]:  # fmt: skip
        return _number(self._resolve(flag_key, evaluation_context), default_value, float)

    def resolve_object_details(self, flag_key: str, default_value: Any,
                               evaluation_context: Optional[EvaluationContext] = None) -> FlagResolutionDetails[Any]:  # fmt: skip
        return _object(self._resolve(flag_key, evaluation_context), default_value)

    async def resolve_boolean_details_async(self, flag_key: str, default_value: bool,
                                            evaluation_context: Optional[EvaluationContext] = None) -> FlagResolutionDetails[bool]:  # fmt: skip
        return _boolean(await self._resolve_async(flag_key, evaluation_context), default_value)

    async def resolve_string_details_async(self, flag_key: str, default_value: str,
                                           evaluation_context: Optional[EvaluationContext] = None) -> FlagResolutionDetails[str]:  # fmt: skip
        return _string(await self._resolve_async(flag_key, evaluation_context), default_value)

    async def resolve_integer_details_async(self, flag_key: str, default_value: int,
                                            evaluation_context: Optional[EvaluationContext] = None) -> FlagResolutionDetails[int]:  # fmt: skip
        return _number(await self._resolve_async(flag_key, evaluation_context), default_value, int)

    async def resolve_float_details_async(self, flag_key: str, default_value: float,
                                          evaluation_context: Optional[EvaluationContext] = None) -> FlagResolutionDetails[float]:  # fmt: skip
        return _number(await self._resolve_async(flag_key, evaluation_context), default_value, float)

    async def resolve_object_details_async(self, flag_key: str, default_value: Any,
                                           evaluation_context: Optional[EvaluationContext] = None) -> FlagResolutionDetails[Any]:  # fmt: skip
        return _object(await self._resolve_async(flag_key, evaluation_context), default_value)

    # --- one read ----------------------------------------------------------------------------

    def _resolve(self, flag_key: str, context: Optional[EvaluationContext]) -> Resolved:
        arguments = self._arguments(flag_key, context)
        if isinstance(arguments, FlagResolutionDetails):
            return arguments
        read = self._client.get_feature_flag_result if self._client is not None else calls.get_feature_flag_result
        return _found(flag_key, read(*arguments[0], **arguments[1]))

    async def _resolve_async(self, flag_key: str, context: Optional[EvaluationContext]) -> Resolved:
        arguments = self._arguments(flag_key, context)
        if isinstance(arguments, FlagResolutionDetails):
            return arguments
        if self._client is None:
            return _found(flag_key, await calls.get_feature_flag_result_async(*arguments[0], **arguments[1]))
        return _found(
            flag_key, await asyncio.to_thread(self._client.get_feature_flag_result, *arguments[0], **arguments[1])
        )

    def _arguments(self, flag_key: str, context: Optional[EvaluationContext]) -> Any:
        """(args, keywords) of ``get_feature_flag_result``, or the error details when there is no person."""
        person = context.targeting_key if context is not None and context.targeting_key else None
        if person is None:
            person = _context.get_context_distinct_id() or self._default_distinct_id
        if person is None:
            return _error(ErrorCode.TARGETING_KEY_MISSING, "no targeting_key in the evaluation context, no "
                          "identify_context() and no default_distinct_id")  # fmt: skip
        person_properties, groups, group_properties = _split(context)
        return (flag_key, person), {
            "groups": groups or None, "person_properties": person_properties or None,
            "group_properties": group_properties or None, "send_feature_flag_events": self._send_feature_flag_events,
        }  # fmt: skip


def _split(context: Optional[EvaluationContext]) -> Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Any]]:
    attributes: Mapping[str, Any] = (context.attributes if context is not None else None) or {}
    groups = attributes.get(GROUPS_KEY) or {}
    group_properties = attributes.get(GROUP_PROPERTIES_KEY) or {}
    person = {k: v for k, v in attributes.items() if k not in (GROUPS_KEY, GROUP_PROPERTIES_KEY)}
    return (
        person,
        (groups if isinstance(groups, dict) else {}),
        (group_properties if isinstance(group_properties, dict) else {}),
    )


def _found(flag_key: str, result: Optional[FeatureFlagResult]) -> Resolved:
    if result is None:
        return _error(ErrorCode.FLAG_NOT_FOUND, "Flag '%s' not found or disabled." % flag_key)
    return result


def _error(code: ErrorCode, message: str) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(value=None, error_code=code, error_message=message, reason=Reason.ERROR)


def _boolean(result: Resolved, default: bool) -> FlagResolutionDetails[Any]:
    if isinstance(result, FlagResolutionDetails):
        return _with_default(result, default)
    return _details(result.enabled, result)


def _string(result: Resolved, default: str) -> FlagResolutionDetails[Any]:
    if isinstance(result, FlagResolutionDetails):
        return _with_default(result, default)
    if result.variant is None:
        if not result.enabled:
            return _details(default, result)  # off: the default, not a type error
        return _mismatch(default, "Flag '%s' has no string variant (boolean flag)." % result.key)
    return _details(result.variant, result)


def _number(result: Resolved, default: Any, kind: Callable[[Any], Any]) -> FlagResolutionDetails[Any]:
    if isinstance(result, FlagResolutionDetails):
        return _with_default(result, default)
    if result.variant is None:
        if not result.enabled:
            return _details(default, result)
        return _mismatch(default, "Flag '%s' has no variant to read as %s." % (result.key, kind.__name__))
    try:
        variant: Any = result.variant
        if _HEX.fullmatch(variant.strip()):
            variant = int(variant, 16)
        return _details(kind(variant), result)
    except (TypeError, ValueError, OverflowError):
        return _mismatch(
            default, "Flag '%s' variant %r is not a valid %s." % (result.key, result.variant, kind.__name__)
        )


def _object(result: Resolved, default: Any) -> FlagResolutionDetails[Any]:
    if isinstance(result, FlagResolutionDetails):
        return _with_default(result, default)
    if not isinstance(result.payload, (dict, list)):
        if not result.enabled:
            return _details(default, result)
        return _mismatch(default, "Flag '%s' has no object/JSON payload." % result.key)
    return _details(result.payload, result)


def _with_default(details: FlagResolutionDetails[Any], default: Any) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(value=default, error_code=details.error_code, error_message=details.error_message,
                                 reason=Reason.ERROR)  # fmt: skip


def _mismatch(default: Any, message: str) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(value=default, error_code=ErrorCode.TYPE_MISMATCH, error_message=message,
                                 reason=Reason.ERROR)  # fmt: skip


def _details(value: Any, result: FeatureFlagResult) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(value=value, variant=result.variant, reason=_reason(result),
                                 flag_metadata={"posthog_reason": result.reason} if result.reason is not None else {})  # fmt: skip


def _reason(result: FeatureFlagResult) -> Reason:
    """The official provider's rule: on is ``TARGETING_MATCH``; off is ``DEFAULT``, or ``DISABLED``
    when PostHog's reason says the flag is disabled."""
    if result.enabled:
        return Reason.TARGETING_MATCH
    return Reason.DISABLED if "disabled" in (result.reason or "").lower() else Reason.DEFAULT
