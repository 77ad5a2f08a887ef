"""PostHog's result types: ``FeatureFlagResult`` (``get_feature_flag_result``) and
``FeatureFlagEvaluationRuntime`` (where a flag is meant to be evaluated), as in its SDK 7.x."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Optional, Union

FlagValue = Union[bool, str]


@dataclass(frozen=True)
class FeatureFlagResult:
    """A flag's value, payload and reason from one read (PostHog's ``FeatureFlagResult``).

    ``reason`` is PostHog's description for an answer of ``/flags`` ("Matched condition set 1");
    None for one decided locally, as in PostHog's SDK.
    """

    key: str
    enabled: bool
    variant: Optional[str]
    payload: Optional[Any]
    reason: Optional[str]

    def get_value(self) -> FlagValue:
        """The variant if there is one, else ``enabled`` (what ``$feature_flag_response`` reports)."""
        return self.variant or self.enabled

    @classmethod
    def of_value(
        cls, key: str, value: Any, payload: Any, reason: Optional[str] = None
    ) -> Optional["FeatureFlagResult"]:
        """From a flag value (True/False/variant); None for None."""
        if value is None:
            return None
        enabled, variant = (True, value) if isinstance(value, str) else (bool(value), None)
        return cls(key=key, enabled=enabled, variant=variant, payload=payload, reason=reason)


class FeatureFlagEvaluationRuntime(str, enum.Enum):
    """Where a flag is meant to be evaluated (PostHog's enum): ``ALL`` suits both sides."""

    ALL = "all"
    CLIENT = "client"
    SERVER = "server"

    @classmethod
    def from_value(cls, value: Any) -> "FeatureFlagEvaluationRuntime":
        """A definition's ``evaluation_runtime``; missing, null or unknown is ``ALL`` (PostHog's default)."""
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        return cls.ALL

    def matches(self, other: "FeatureFlagEvaluationRuntime") -> bool:
        return self is other or FeatureFlagEvaluationRuntime.ALL in (self, other)
