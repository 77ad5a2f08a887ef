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

``trace``, when given a list, receives ``(depth, line)`` pairs saying what was decided
and why: ``posthog-otel flags explain`` prints them.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple, Union, cast

from .._log import logger, warn_limited
from .definitions import CohortFilter, CohortGroup, Condition, Definitions, DependencyFilter, Flag
from .errors import DefinitionError, NeedsServer, Reason, Undecidable, first_reason
from .regex import new_budget

FlagValue = Union[bool, str]
Trace = List[Tuple[int, str]]

_SCALE = float(0xFFFFFFFFFFFFFFF)
_MATCH, _NO_MATCH, _OUT_OF_ROLLOUT = "match", "no match", "out of rollout"
_MAX_DEPTH = 64  # cohorts and dependencies nested deeper than this are cycles
_warned_dependencies: Set[Tuple[Any, str]] = set()


def bucket(key: Any, bucketing_id: Any, salt: str = "", separator: str = ".") -> float:
    """A stable number in [0, 1] for a flag key and a bucketing id."""
    text = f"{key}{separator}{bucketing_id}{salt}"
    share = _buckets.get(text)
    if share is None:
        digest = hashlib.sha1(text.encode("utf-8")).digest()
        share = (int.from_bytes(digest[:8], "big") >> 4) / _SCALE
        if len(_buckets) >= _BUCKETS_KEPT:
            _buckets.clear()  # bounded; the people who come back fill it again
        _buckets[text] = share
    return share


#: Buckets computed lately: the same people read the same flags again and again, and
#: a dictionary look-up costs a tenth of a sha1. At most this many are kept (~1 MB); a
#: larger store costs more in memory churn, for a stream of new people, than it saves.
_BUCKETS_KEPT = 10_000
_buckets: Dict[str, float] = {}


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
                bucketing_id = self._bucketing_id(flag, self.distinct_id)
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

    def _bucketing_id(self, flag: Flag, distinct_id: Any) -> Any:
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
            step = self._condition
            if self.trace is not None:
                self.note("condition %d:", condition.index)
                step = functools.partial(self._nested, self._condition)  # indent what it says
            try:
                outcome, value = step(flag, condition, distinct_id, properties, bucketing_id, groups_visible)
            except NeedsServer as problem:
                if flag.reason is not None:
                    problem.reason = first_reason(problem.reason, flag.reason)
                raise
            except Undecidable as problem:
                self.note("  undecidable here, the next condition is tried")
                undecided = first_reason(undecided, problem.reason)
                why = why or "condition %d: %s" % (condition.index, problem.why)
                continue
            if outcome is _MATCH:
                return value
            if flag.early_exit and outcome is _OUT_OF_ROLLOUT:
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
                    self.note("held out (%s%% holdout): %s", _number(share), label)
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

    # --- one condition ------------------------------------------------------------------

    def _condition(
        self,
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
            mapping = self.definitions.group_type_mapping if groups_visible else {}
            group_type = mapping.get(str(condition.aggregation))
            if not group_type or group_type not in (self.groups if groups_visible else {}):
                self.note("targets a group the call does not name: no match")
                return _NO_MATCH, False
            if group_type not in self.group_properties:
                raise Undecidable(Reason.MISSING_CONTEXT, "no properties for group %s" % group_type)
            properties = self.group_properties[group_type]
            bucketing_id = self.groups[group_type]
        if condition.filters:
            if not self._filters_match(condition, distinct_id, properties):
                self.note("no match")
                return _NO_MATCH, False
        if condition.rollout is not None:
            if condition.rollout_problem:
                raise DefinitionError(condition.rollout_problem)
            if condition.threshold >= 1 and self.trace is None:  # type: ignore[operator]
                # No bucket is above 1: skip the hash (PostHog computes it, to the same end).
                return _MATCH, self._variant(flag, condition, bucketing_id)
            share = bucket(flag.key, bucketing_id)
            outside = share > condition.threshold  # type: ignore[operator]
            if self.trace is not None:
                self.note("rollout bucket %s is %s the %s%% rollout%s", _percent(share), "outside" if outside else "inside",
                          _number(condition.rollout), ": no match" if outside else "")  # fmt: skip
            if outside:
                return _OUT_OF_ROLLOUT, False
        return _MATCH, self._variant(flag, condition, bucketing_id)

    def _variant(self, flag: Flag, condition: Condition, bucketing_id: Any) -> FlagValue:
        override = condition.variant
        if override and override in flag.variant_keys:
            self.note("match: variant %r (the condition's override)", override)
            return cast(str, override)  # one of the flag's variant keys, strings in PostHog's definitions
        if flag.table_problem:
            raise DefinitionError(flag.table_problem)
        if not flag.variants:
            self.note("match: true")
            return True
        share = bucket(flag.key, bucketing_id, salt="variant")
        for low, high, key in flag.variants:
            if low <= share < high:
                if self.trace is not None:
                    self.note("match: variant %r (variant bucket %s is in its range %s-%s)",
                              key, _percent(share), _percent(low), _percent(high))  # fmt: skip
                return key or True
        if self.trace is not None:
            self.note("match: true (variant bucket %s is in no variant's range)", _percent(share))
        return True

    def _filters_match(self, condition: Condition, distinct_id: Any, properties: Mapping[str, Any]) -> bool:
        """All filters match; an undecidable one defers the answer, a false one ends it."""
        undecided: Optional[Reason] = None
        server: Optional[NeedsServer] = None
        why = ""
        plain = self.trace is None
        for item in condition.filters:
            try:
                if plain and item.kind == "property":
                    matched = item.match(properties)  # type: ignore[union-attr]  # the common case, without a detour
                else:
                    matched = self.filter(item, distinct_id, properties)
            except NeedsServer as problem:
                self.note("%s: %s", item.describe(), problem.why)
                if undecided is None:
                    server = problem
                undecided = first_reason(undecided, problem.reason)
                continue
            except Undecidable as problem:
                self.note("%s: undecidable: %s", item.describe(), problem.why)
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

    # --- filters ------------------------------------------------------------------------

    def filter(self, item: Any, distinct_id: Any, properties: Mapping[str, Any]) -> bool:
        kind = item.kind
        if kind == "property":
            matched: bool = item.match(properties)
            if self.trace is not None:
                shown = repr(properties[item.key]) if item.key in properties else "not given"
                self.note("%s: %s -> %s", item.describe(), shown, "match" if matched else "no match")
            return matched
        if kind == "cohort":
            return self._cohort(item, distinct_id, properties)
        if kind == "flag":
            return self._dependency(item, distinct_id, properties)
        raise DefinitionError(item.problem)

    def _cohort(self, item: CohortFilter, distinct_id: Any, properties: Mapping[str, Any]) -> bool:
        group = self.definitions.cohorts.get(item.cohort_id)
        if group is None:
            raise NeedsServer(
                Reason.UNSUPPORTED_DEFINITION,
                "cohort %s was not sent (a static cohort): PostHog decides" % item.cohort_id,
            )
        if item.operator not in ("exact", "in", "not_in"):
            raise Undecidable(Reason.UNSUPPORTED_DEFINITION, "cohort operator %r is unknown" % (item.operator,))
        self.note("%s:", item.describe())
        member = self._member(item.cohort_id, group, distinct_id, properties)
        matched = not member if item.operator == "not_in" else member
        self.note("%s -> %s", item.describe(), "match" if matched else "no match")
        return matched

    def _member(self, cohort_id: str, group: CohortGroup, distinct_id: Any, properties: Mapping[str, Any]) -> bool:
        """Whether the properties are in the cohort: evaluated once, then remembered."""
        key = (cohort_id, id(properties))
        known = self.cohorts.get(key)
        if known is None:
            try:
                known = self._nested(self._group, group, distinct_id, properties)
            except (Undecidable, DefinitionError) as problem:
                known = problem
            self.cohorts[key] = known
        elif self.trace is not None:
            self.note("  (decided above)")
        if isinstance(known, Exception):
            raise known
        return known

    def _group(self, group: CohortGroup, distinct_id: Any, properties: Mapping[str, Any]) -> bool:
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
                    matched = self._nested(self._group, entry, distinct_id, properties)
                else:
                    item, negated = entry
                    matched = self.filter(item, distinct_id, properties) != negated
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

    def _nested(self, step: Any, *args: Any) -> Any:
        if self.depth >= _MAX_DEPTH:
            raise DefinitionError("cohorts or flag dependencies nest too deep (a cycle?)")
        self.depth += 1
        try:
            return step(*args)
        finally:
            self.depth -= 1

    # --- flag dependencies --------------------------------------------------------------

    def _dependency(self, item: DependencyFilter, distinct_id: Any, properties: Mapping[str, Any]) -> bool:
        if item.malformed:
            _warn_malformed(item.flag_key, item.malformed)
            return False
        if item.chain_problem:
            raise Undecidable(
                Reason.UNSUPPORTED_DEFINITION, "dependency on %s: %s" % (item.flag_key, item.chain_problem)
            )
        by_key, cache = self.definitions.by_key, self.cache
        try:
            missing = next((key for key in item.chain if key not in cache and key not in by_key), None)
        except TypeError:
            raise DefinitionError("a dependency_chain entry is not a flag key") from None
        if missing is not None:
            cache[missing] = None
            raise Undecidable(Reason.UNSUPPORTED_DEFINITION, "flag %s is not in the definitions" % (missing,))
        for key in item.chain:
            if key not in cache:
                self._nested(self._evaluate_dependency, key, distinct_id, properties)
        actual = cache.get(item.flag_key)
        if actual is None:
            resolved = item.flag_key in by_key and item.flag_key in cache
            reason = Reason.UNRESOLVED_DEPENDENCY if resolved else Reason.UNSUPPORTED_DEFINITION
            raise Undecidable(reason, "flag %s could not be decided" % (item.flag_key,))
        matched = _dependency_matches(item.expected, actual)
        self.note("%s: it is %r -> %s", item.describe(), actual, "match" if matched else "no match")
        return matched

    def _evaluate_dependency(self, key: Any, distinct_id: Any, properties: Mapping[str, Any]) -> None:
        flag = self.definitions.by_key[key]
        if not flag.active:
            self.cache[key] = False
            return
        if flag.continuity:
            self.cache[key] = None
            raise Undecidable(Reason.UNRESOLVED_DEPENDENCY, "flag %s has experience continuity on" % (key,))
        if flag.problem:
            raise DefinitionError(flag.problem)
        self.note("flag %s:", key)
        try:
            bucketing_id = distinct_id if flag.aggregation is not None else self._bucketing_id(flag, distinct_id)
            self.cache[key] = self.match(flag, distinct_id, properties, bucketing_id, False)
        except NeedsServer as problem:
            raise NeedsServer(Reason.UNRESOLVED_DEPENDENCY, "flag %s: %s" % (key, problem.why)) from problem
        except Undecidable as problem:
            self.cache[key] = None
            raise Undecidable(Reason.UNRESOLVED_DEPENDENCY, "flag %s: %s" % (key, problem.why)) from problem


def _dependency_matches(expected: Any, actual: Any) -> bool:
    """A variant matches its own name or ``true``; a boolean matches the same boolean."""
    if isinstance(actual, str) and actual:
        if isinstance(expected, bool):
            return expected
        return isinstance(expected, str) and actual == expected
    return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected


def _warn_malformed(flag_key: Any, problem: str) -> None:
    seen = (flag_key, problem)
    if seen not in _warned_dependencies:
        _warned_dependencies.add(seen)
        logger.warning("posthog_otel: a dependency on flag %r is malformed (%s); it never matches. "
                       "Fix the condition in PostHog.", flag_key, problem)  # fmt: skip


def _percent(share: float) -> str:
    return "%.2f%%" % (share * 100)


def _number(value: Any) -> str:
    return ("%g" % value) if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
