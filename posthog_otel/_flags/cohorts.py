"""Cohort filters: a cohort's property groups, evaluated here when PostHog sent them.

Static cohorts are PostHog's to decide (``NeedsServer``). A cohort is evaluated once per
flag evaluation and set of properties, its answer remembered in ``Evaluation.cohorts``:
cohorts that each name the previous one twice would otherwise cost 2**depth.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from .definitions import CohortFilter, CohortGroup
from .errors import DefinitionError, NeedsServer, Reason, Undecidable, first_reason
from .steps import EvaluationState


def cohort(ev: EvaluationState, item: CohortFilter, distinct_id: Any, properties: Mapping[str, Any]) -> bool:
    """Whether a cohort filter (``in``/``exact``/``not_in``) matches."""
    group = ev.definitions.cohorts.get(item.cohort_id)
    if group is None:
        raise NeedsServer(
            Reason.UNSUPPORTED_DEFINITION,
            "cohort %s was not sent (a static cohort): PostHog decides" % item.cohort_id,
        )
    if item.operator not in ("exact", "in", "not_in"):
        raise Undecidable(Reason.UNSUPPORTED_DEFINITION, "cohort operator %r is unknown" % (item.operator,))
    ev.note("%s:", item.describe())
    member = _member(ev, item.cohort_id, group, distinct_id, properties)
    matched = not member if item.operator == "not_in" else member
    ev.note("%s -> %s", item.describe(), "match" if matched else "no match")
    return matched


def _member(
    ev: EvaluationState, cohort_id: str, group: CohortGroup, distinct_id: Any, properties: Mapping[str, Any]
) -> bool:
    """Whether the properties are in the cohort: evaluated once, then remembered."""
    key = (cohort_id, id(properties))
    known = ev.cohorts.get(key)
    if known is None:
        try:
            known = ev.nested(_group, ev, group, distinct_id, properties)
        except (Undecidable, DefinitionError) as problem:
            known = problem
        ev.cohorts[key] = known
    elif ev.trace is not None:
        ev.note("  (decided above)")
    if isinstance(known, Exception):
        raise known
    return known


def _group(ev: EvaluationState, group: CohortGroup, distinct_id: Any, properties: Mapping[str, Any]) -> bool:
    """A cohort's AND/OR group: every entry is evaluated (as PostHog's SDK does)."""
    if group.problem:
        raise NeedsServer(Reason.UNSUPPORTED_DEFINITION, group.problem)
    if not group.entries:
        return True
    decided: Optional[bool] = None
    undecided: Optional[Reason] = None
    why = ""
    for entry in group.entries:
        try:
            if isinstance(entry, str):
                raise NeedsServer(Reason.UNSUPPORTED_DEFINITION, entry)
            if isinstance(entry, CohortGroup):
                matched = ev.nested(_group, ev, entry, distinct_id, properties)
            else:
                item, negated = entry
                matched = ev.filter(item, distinct_id, properties) != negated
            if matched != group.is_and:
                decided = matched
        except NeedsServer:
            raise
        except Undecidable as problem:
            undecided = first_reason(undecided, problem.reason)
            why = why or problem.why
    if decided is not None:
        return decided
    if undecided is not None:
        raise Undecidable(undecided, why)
    return group.is_and
