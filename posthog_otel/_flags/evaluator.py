"""Deciding a flag locally: PostHog's rules, one evaluation at a time.

The order of decisions, for a flag and a person (or group):

1. An inactive flag is off. One with experience continuity cannot be decided here.
2. A group flag (``aggregation_group_type_index``) is decided for the group the call
   names for that group type (``group_type_mapping``), bucketed by its key; without
   that group it is off. Other flags bucket by the distinct id, or by ``device_id``
   when the flag says so.
3. Early access (``feature_enrollment``) is the ``$feature_enrollment/<key>`` property.
4. A holdout takes its share of the buckets first: ``holdout-<id>``.
5. Conditions in order: the first whose filters all match and whose rollout takes the
   bucket decides; its variant is the override, if valid, else the variant whose range
   holds the variant bucket. A condition may target a group of its own.
6. No condition matched: off, unless one was undecidable, which makes the flag
   undecidable (it goes to ``/flags``).

Buckets are ``sha1("<flag key>.<bucketing id><salt>")``'s first 60 bits over 2**60 - 1.
A filter may be a property filter, a cohort (its property groups, evaluated here when
PostHog sent them; static cohorts are PostHog's to decide) or another flag's value
(evaluated along its ``dependency_chain``, each once per evaluation).

Bounded work: a cohort is evaluated once per flag evaluation and set of properties, its
answer remembered (cohorts that each name the previous one twice would otherwise cost
2**depth); regex filters spend from one budget per evaluation (``regex.new_budget``).

Here the flag and its conditions in order; one condition in ``conditions``, cohorts in
``cohorts``, flag dependencies in ``dependencies``, buckets in ``buckets``.

``trace``, when given a list, receives ``(depth, line)`` pairs saying what was decided
and why: ``posthog-otel flags explain`` prints them.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

from .._log import warn_limited
from .buckets import bucket, number
from .cohorts import cohort
from .conditions import MATCH, OUT_OF_ROLLOUT, outcome
from .definitions import Definitions, Flag
from .dependencies import dependency
from .errors import DefinitionError, NeedsServer, Reason, Undecidable, first_reason
from .regex import new_budget
from .results import FlagValue
from .steps import Trace

__all__ = ["Evaluation", "FlagValue", "Trace", "bucket"]


_MAX_DEPTH = 64  # cohorts and dependencies nested deeper than this are cycles


class Evaluation:
    """Flag evaluations for one set of inputs (one person, groups, device); any number of flags,
    each with its own dependency cache (a dependency is evaluated once per flag evaluated)."""

    __slots__ = ("definitions", "distinct_id", "device_id", "groups", "group_properties", "cache", "cohorts", "trace",
                 "depth")  # fmt: skip

    def __init__(
        self,
        definitions: Definitions,
        distinct_id: Any,
        groups: Mapping[str, Any],
        group_properties: Mapping[str, Mapping[str, Any]],
        device_id: Optional[str] = None,
        trace: Optional[Trace] = None,
    ) -> None:
        self.definitions = definitions
        self.distinct_id = distinct_id
        self.device_id = device_id
        self.groups = groups
        self.group_properties = group_properties
        self.cache: Dict[Any, Optional[FlagValue]] = {}
        #: Cohort answers of this flag evaluation, by (cohort id, properties): a bool, or what was raised.
        self.cohorts: Dict[Tuple[str, int], Union[bool, Exception]] = {}
        self.trace = trace
        self.depth = 0
        new_budget()

    def note(self, line: str, *args: Any) -> None:
        if self.trace is not None:
            self.trace.append((self.depth, line % args if args else line))

    # --- the flag -----------------------------------------------------------------------

    def value(self, flag: Flag, person_properties: Mapping[str, Any]) -> FlagValue:
        """The flag's value; ``Undecidable`` / ``DefinitionError`` when not decidable here."""
        if self.cache:
            self.cache = {}  # dependencies are evaluated once per flag evaluation, not across flags
        if self.cohorts:
            self.cohorts = {}
        if not flag.active:
            self.note("the flag is not active: false")
            return False
        if flag.continuity:
            raise Undecidable(Reason.EXPERIENCE_CONTINUITY, "the flag has experience continuity on: PostHog decides")
        if flag.problem:
            raise DefinitionError(flag.problem)
        if flag.aggregation is not None:
            return self._group_flag(flag)
        bucketing_id = self.distinct_id
        if flag.device_bucketing:
            try:
                bucketing_id = self.bucketing_id(flag, self.distinct_id)
            except Undecidable as problem:
                problem.reason = flag.reason or problem.reason
                raise
        return self.match(flag, self.distinct_id, person_properties, bucketing_id, True)

    def _group_flag(self, flag: Flag) -> FlagValue:
        group_type = self.definitions.group_type_mapping.get(str(flag.aggregation))
        if not group_type:
            warn_limited("flag:group_index:%s" % (flag.key,), "posthog_otel: flag %s uses unknown group type index %s; "
                         "it is asked of PostHog", flag.key, flag.aggregation)  # fmt: skip
            raise Undecidable(Reason.UNSUPPORTED_DEFINITION, "group type index %s is unknown" % flag.aggregation)
        if group_type not in self.groups:
            self.note("a %s flag, and the call names no %s: false", group_type, group_type)
            return False
        if group_type not in self.group_properties:
            raise Undecidable(Reason.MISSING_CONTEXT, "no properties for group %s" % group_type)
        group_key = self.groups[group_type]
        self.note("a %s flag: evaluated for %s %r", group_type, group_type, group_key)
        return self.match(flag, group_key, self.group_properties[group_type], group_key, True)

    def bucketing_id(self, flag: Flag, distinct_id: Any) -> Any:
        if not flag.device_bucketing:
            return distinct_id
        if not self.device_id:
            raise Undecidable(Reason.MISSING_CONTEXT, "the flag buckets by device_id and none was given")
        return self.device_id

    def match(
        self, flag: Flag, distinct_id: Any, properties: Mapping[str, Any], bucketing_id: Any, groups_visible: bool
    ) -> FlagValue:
        """Enrollment, holdout, then the conditions (PostHog's ``match_feature_flag_properties``)."""
        if flag.special:
            held_out = self._before_conditions(flag, properties, bucketing_id)
            if held_out is not None:
                return held_out
        undecided: Optional[Reason] = None
        why = ""
        for condition in flag.conditions:
            step: Callable[..., Tuple[str, FlagValue]] = outcome
            if self.trace is not None:
                self.note("condition %d:", condition.index)
                step = functools.partial(self.nested, outcome)  # indent what it says
            try:
                decided, value = step(self, flag, condition, distinct_id, properties, bucketing_id, groups_visible)
            except NeedsServer as problem:
                if flag.reason is not None:
                    problem.reason = first_reason(problem.reason, flag.reason)
                raise
            except Undecidable as problem:
                self.note("  undecidable here, the next condition is tried")
                undecided = first_reason(undecided, problem.reason)
                why = why or "condition %d: %s" % (condition.index, problem.why)
                continue
            if decided is MATCH:
                return value
            if flag.early_exit and decided is OUT_OF_ROLLOUT:
                self.note("early exit: later conditions are not checked")
                break
        if undecided is not None:
            raise Undecidable(undecided, "no condition matched, and %s" % why)
        self.note("no condition matched: false")
        return False

    def _before_conditions(self, flag: Flag, properties: Mapping[str, Any], bucketing_id: Any) -> Optional[FlagValue]:
        """Early access enrollment and holdouts, which decide before any condition; None if they do not."""
        if flag.enrollment:
            return self._enrollment(flag, properties)
        if flag.holdout_problem:
            raise DefinitionError(flag.holdout_problem)
        if flag.holdout is not None:
            share, label = flag.holdout
            if share == 100.0 or bucket("holdout", bucketing_id, separator="-") <= share / 100:
                if self.trace is not None:
                    self.note("held out (%s%% holdout): %s", number(share), label)
                return label
        if flag.variants_problem:
            raise DefinitionError(flag.variants_problem)
        return None

    def _enrollment(self, flag: Flag, properties: Mapping[str, Any]) -> bool:
        if flag.aggregation is not None:
            raise Undecidable(Reason.UNSUPPORTED_DEFINITION, "a group flag with early access enrollment")
        key = f"$feature_enrollment/{flag.raw.get('key')}"
        if key not in properties:
            raise Undecidable(Reason.MISSING_CONTEXT, "%s was not given" % key)
        enrolled = properties[key]
        self.note("early access: %s = %r", key, enrolled)
        return enrolled is True or enrolled == "true"

    # --- filters ------------------------------------------------------------------------

    def filter(self, item: Any, distinct_id: Any, properties: Mapping[str, Any]) -> bool:
        """One filter of a condition or a cohort: a property, a cohort (``cohorts``) or a flag (``dependencies``)."""
        kind = item.kind
        if kind == "property":
            matched: bool = item.match(properties)
            if self.trace is not None:
                shown = repr(properties[item.key]) if item.key in properties else "not given"
                self.note("%s: %s -> %s", item.describe(), shown, "match" if matched else "no match")
            return matched
        if kind == "cohort":
            return cohort(self, item, distinct_id, properties)
        if kind == "flag":
            return dependency(self, item, distinct_id, properties)
        raise DefinitionError(item.problem)

    # --- the evaluation's budget --------------------------------------------------------

    def nested(self, step: Any, *args: Any) -> Any:
        """``step(*args)`` one level deeper: what it notes is indented, and a cycle ends in a DefinitionError."""
        if self.depth >= _MAX_DEPTH:
            raise DefinitionError("cohorts or flag dependencies nest too deep (a cycle?)")
        self.depth += 1
        try:
            return step(*args)
        finally:
            self.depth -= 1
