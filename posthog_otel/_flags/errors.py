"""Why a flag could not be decided here, and how far that reaches.

Three outcomes stop a local evaluation short, as in PostHog's SDK:

- ``Undecidable``: this filter cannot be decided with what the call passed (a property
  missing, a dependency unresolved). The condition it is in is undecided, but a later
  condition may still decide the flag.
- ``NeedsServer``: only PostHog can decide (a static cohort, a malformed cohort). It ends
  the flag's evaluation at once: the answer must come from ``/flags``.
- ``DefinitionError``: the definition has a shape PostHog's SDK fails on (a condition
  that is not an object, a rollout that is not a number). It travels like an unexpected
  error there: it ends the evaluation, is logged, and the flag is asked of ``/flags``.

Each carries a ``Reason``; when several apply, the one earliest in ``PRECEDENCE`` is
reported, so every SDK names the same reason whatever order it met them in.
"""

from __future__ import annotations

import enum
from typing import Optional


class Reason(str, enum.Enum):
    """Why local evaluation left a flag without a value (PostHog's ``UnresolvedFlagReason``)."""

    EXPERIENCE_CONTINUITY = "experience_continuity"
    UNSUPPORTED_DEFINITION = "unsupported_definition"
    UNRESOLVED_DEPENDENCY = "unresolved_dependency"
    MISSING_CONTEXT = "missing_context"


PRECEDENCE = (
    Reason.EXPERIENCE_CONTINUITY,
    Reason.UNSUPPORTED_DEFINITION,
    Reason.UNRESOLVED_DEPENDENCY,
    Reason.MISSING_CONTEXT,
)
_RANK = {reason: rank for rank, reason in enumerate(PRECEDENCE)}


def first_reason(current: Optional[Reason], new: Reason) -> Reason:
    """The reason to report when ``current`` (maybe none yet) and ``new`` both apply."""
    if current is None or _RANK[new] < _RANK[current]:
        return new
    return current


class Undecidable(Exception):
    """This part of the definition cannot be decided locally with the given inputs."""

    def __init__(self, reason: Reason, why: str) -> None:
        super().__init__(why)
        self.reason = reason
        self.why = why


class NeedsServer(Undecidable):
    """Only PostHog can decide this flag; stop evaluating it here."""


class DefinitionError(Exception):
    """The definition has a shape local evaluation cannot read (PostHog's SDK errors too)."""
