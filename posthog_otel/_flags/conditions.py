"""One condition of a flag: its group, its filters, its rollout, then the variant it gives.

A condition matches when all its filters match and its rollout takes the bucket; its
variant is the override, if valid, else the variant whose range holds the variant bucket.
A filter that cannot be decided here defers the answer; a false one ends it.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple, cast

from .buckets import bucket, number, percent
from .definitions import Condition, Flag
from .errors import DefinitionError, NeedsServer, Reason, Undecidable, first_reason
from .results import FlagValue
from .steps import EvaluationState

MATCH, NO_MATCH, OUT_OF_ROLLOUT = "match", "no match", "out of rollout"


def outcome(
    ev: EvaluationState,
    flag: Flag,
    condition: Condition,
    distinct_id: Any,
    properties: Mapping[str, Any],
    bucketing_id: Any,
    groups_visible: bool,
) -> Tuple[str, FlagValue]:
    """(outcome, value): the value is the flag's when the outcome is a match, else False (unread)."""
    if condition.problem:
        raise DefinitionError(condition.problem)
    if condition.own_group:
        mapping = ev.definitions.group_type_mapping if groups_visible else {}
        group_type = mapping.get(str(condition.aggregation))
        if not group_type or group_type not in (ev.groups if groups_visible else {}):
            ev.note("targets a group the call does not name: no match")
            return NO_MATCH, False
        if group_type not in ev.group_properties:
            raise Undecidable(Reason.MISSING_CONTEXT, "no properties for group %s" % group_type)
        properties = ev.group_properties[group_type]
        bucketing_id = ev.groups[group_type]
    if condition.filters:
        if not filters_match(ev, condition, distinct_id, properties):
            ev.note("no match")
            return NO_MATCH, False
    if condition.rollout is not None:
        if condition.rollout_problem:
            raise DefinitionError(condition.rollout_problem)
        if condition.threshold >= 1 and ev.trace is None:  # type: ignore[operator]
            # No bucket is above 1: skip the hash (PostHog computes it, to the same end).
            return MATCH, variant(ev, flag, condition, bucketing_id)
        share = bucket(flag.key, bucketing_id)
        outside = share > condition.threshold  # type: ignore[operator]
        if ev.trace is not None:
            ev.note("rollout bucket %s is %s the %s%% rollout%s", percent(share), "outside" if outside else "inside",
                    number(condition.rollout), ": no match" if outside else "")  # fmt: skip
        if outside:
            return OUT_OF_ROLLOUT, False
    return MATCH, variant(ev, flag, condition, bucketing_id)


def variant(ev: EvaluationState, flag: Flag, condition: Condition, bucketing_id: Any) -> FlagValue:
    """The matched condition's value: its override, else the variant whose range holds the bucket."""
    override = condition.variant
    if override and override in flag.variant_keys:
        ev.note("match: variant %r (the condition's override)", override)
        return cast(str, override)  # one of the flag's variant keys, strings in PostHog's definitions
    if flag.table_problem:
        raise DefinitionError(flag.table_problem)
    if not flag.variants:
        ev.note("match: true")
        return True
    share = bucket(flag.key, bucketing_id, salt="variant")
    for low, high, key in flag.variants:
        if low <= share < high:
            if ev.trace is not None:
                ev.note("match: variant %r (variant bucket %s is in its range %s-%s)",
                        key, percent(share), percent(low), percent(high))  # fmt: skip
            return key or True
    if ev.trace is not None:
        ev.note("match: true (variant bucket %s is in no variant's range)", percent(share))
    return True


def filters_match(ev: EvaluationState, condition: Condition, distinct_id: Any, properties: Mapping[str, Any]) -> bool:
    """All filters match; an undecidable one defers the answer, a false one ends it."""
    undecided: Optional[Reason] = None
    server: Optional[NeedsServer] = None
    why = ""
    plain = ev.trace is None
    for item in condition.filters:
        try:
            if plain and item.kind == "property":
                matched = item.match(properties)  # type: ignore[union-attr]  # the common case, without a detour
            else:
                matched = ev.filter(item, distinct_id, properties)
        except NeedsServer as problem:
            ev.note("%s: %s", item.describe(), problem.why)
            if undecided is None:
                server = problem
            undecided = first_reason(undecided, problem.reason)
            continue
        except Undecidable as problem:
            ev.note("%s: undecidable: %s", item.describe(), problem.why)
            undecided = first_reason(undecided, problem.reason)
            why = why or problem.why
            continue
        except Exception:
            if undecided is None:
                raise
            break
        if not matched:
            return False
    if server is not None:
        raise server
    if undecided is not None:
        raise Undecidable(undecided, why)
    return True
