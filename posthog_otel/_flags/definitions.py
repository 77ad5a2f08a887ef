"""Flag definitions as ``GET /flags/definitions`` returns them, read once into evaluable form.

The response is ``{"flags": [...], "group_type_mapping": {"0": "company"}, "cohorts":
{"7": {...}}, "property_matching_version": 1}``. ``Definitions.from_response`` checks its
shape (a response without a list of flags is refused whole, so the last good definitions
stay in use) and compiles every flag: filters get their operator and value read,
conditions their rollout, variants their buckets. That work is done on the poller's
thread, once per change, instead of on every call. One flag that cannot be read at all
(not an object, a key that is not text, a part that fails to compile) does not cost the
others: it is left out (so it is asked of PostHog, as a flag created since the last poll
is), counted (``unreadable_flag_definition``) and listed in ``skipped``.

A part of a flag that PostHog's SDK could not read either (a condition that is not an
object, a rollout that is not a number) is kept as a ``problem`` and raised as
``DefinitionError`` when evaluation reaches it, not before, as that SDK does.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from .._log import count_drop
from .errors import Reason
from .properties import PropertyFilter, compile_property

#: Cohort filter operators local evaluation understands.
COHORT_OPERATORS = ("exact", "in", "not_in")
_NOT_GIVEN = object()


class BrokenFilter:
    kind = "broken"
    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def describe(self) -> str:
        return "unreadable filter (%s)" % self.problem


class CohortFilter:
    """``{"type": "cohort", "value": 7}``: the person is (``not_in``: is not) in cohort 7."""

    kind = "cohort"
    __slots__ = ("cohort_id", "operator")

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.cohort_id = str(spec.get("value"))
        self.operator = spec.get("operator") or "exact"

    def describe(self) -> str:
        return "%s cohort %s" % ("not in" if self.operator == "not_in" else "in", self.cohort_id)


class DependencyFilter:
    """``{"type": "flag", "key": "other", "operator": "flag_evaluates_to", "value": true}``."""

    kind = "flag"
    __slots__ = ("flag_key", "expected", "malformed", "chain", "chain_problem")

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.flag_key = spec.get("key")
        self.expected = spec.get("value")
        operator = spec.get("operator", "exact")
        if operator != "flag_evaluates_to":
            self.malformed: Optional[str] = "invalid operator %r" % (operator,)
        elif not self.flag_key or self.expected is None:
            self.malformed = "missing key or value"
        else:
            self.malformed = None
        chain = spec.get("dependency_chain", _NOT_GIVEN)
        self.chain: Tuple[Any, ...] = ()
        self.chain_problem: Optional[str] = None
        if chain is _NOT_GIVEN:
            self.chain_problem = "it has no dependency_chain"
        elif not isinstance(chain, list):
            self.chain_problem = "its dependency_chain is not a list"
        elif not chain:
            self.chain_problem = "the dependency is circular"
        else:
            self.chain = tuple(chain)

    def describe(self) -> str:
        return "flag %s evaluates to %r" % (self.flag_key, self.expected)


Filter = Union[PropertyFilter, CohortFilter, DependencyFilter, BrokenFilter]


def compile_filter(spec: Any, matching_version: int) -> Filter:
    if not isinstance(spec, dict):
        return BrokenFilter("a filter is not an object")
    kind = spec.get("type")
    if kind == "cohort":
        return CohortFilter(spec)
    if kind == "flag":
        return DependencyFilter(spec)
    return compile_property(spec, matching_version)


class CohortGroup:
    """A cohort's ``{"type": "AND"|"OR", "values": [...]}``; entries are groups or filters."""

    __slots__ = ("is_and", "entries", "problem")

    def __init__(self, spec: Any, matching_version: int) -> None:
        self.is_and = True
        self.entries: List[Union["CohortGroup", Tuple[Filter, bool], str]] = []
        self.problem: Optional[str] = None
        if spec == {}:
            return
        if not isinstance(spec, dict):
            self.problem = "a cohort group is not an object"
        elif spec.get("type") not in ("AND", "OR"):
            self.problem = "a cohort group's type is not AND or OR"
        elif not isinstance(spec.get("values"), list):
            self.problem = "a cohort group's values are not a list"
        else:
            self.is_and = spec["type"] == "AND"
            self.entries = [_cohort_entry(entry, matching_version) for entry in spec["values"]]


def _cohort_entry(entry: Any, matching_version: int) -> Union[CohortGroup, Tuple[Filter, bool], str]:
    if not isinstance(entry, dict):
        return "a cohort entry is not an object"
    if entry == {} or "values" in entry or entry.get("type") in ("AND", "OR"):
        return CohortGroup(entry, matching_version)
    return (compile_filter(entry, matching_version), bool(entry.get("negation", False)))


class Condition:
    """One release condition: filters, then a rollout, maybe a variant override."""

    __slots__ = ("index", "aggregation", "own_group", "filters", "rollout", "threshold", "variant", "problem",
                 "rollout_problem")  # fmt: skip

    def __init__(self, index: int, spec: Any, flag_aggregation: Any, matching_version: int) -> None:
        self.index = index
        self.filters: Tuple[Filter, ...] = ()
        self.rollout: Any = None
        self.threshold: Optional[float] = None
        self.variant: Any = None
        self.aggregation = flag_aggregation
        self.own_group = False
        self.problem: Optional[str] = None  # raised when the condition is reached
        self.rollout_problem: Optional[str] = None  # raised when its rollout is reached
        if not isinstance(spec, dict):
            self.problem = "condition %d is not an object" % index
            return
        self.aggregation = spec.get("aggregation_group_type_index", flag_aggregation)
        #: The condition targets a group type of its own (a person flag with a group condition).
        self.own_group = self.aggregation != flag_aggregation and self.aggregation is not None
        self.variant = spec.get("variant")
        properties = spec.get("properties") or []
        if isinstance(properties, list):
            self.filters = tuple(compile_filter(p, matching_version) for p in properties)
        else:
            self.filters = (BrokenFilter("condition %d's properties are not a list" % index),)
        self.rollout = spec.get("rollout_percentage")
        if self.rollout is not None:
            try:
                self.threshold = self.rollout / 100
            except TypeError:
                self.rollout_problem = "condition %d's rollout_percentage is not a number" % index


class Flag:
    """One flag definition, compiled. ``raw`` is the definition as PostHog sent it."""

    __slots__ = (
        "key", "raw", "active", "continuity", "aggregation", "device_bucketing", "enrollment",
        "holdout", "conditions", "early_exit", "variants", "variant_keys", "payloads", "reason",
        "problem", "holdout_problem", "variants_problem", "table_problem", "special",
    )  # fmt: skip

    def __init__(self, raw: Dict[str, Any], matching_version: int) -> None:
        self.raw = raw
        self.key = raw.get("key")
        self.active = bool(raw.get("active"))
        self.continuity = bool(raw.get("ensure_experience_continuity", False))
        self.reason: Optional[Reason] = None  # what the definition alone leaves undecidable
        # Unreadable parts, each raised where evaluation first needs it: the filters (at
        # once), the holdout, the variant keys (before any condition), the variant buckets.
        self.problem: Optional[str] = None
        self.holdout_problem: Optional[str] = None
        self.variants_problem: Optional[str] = None
        self.table_problem: Optional[str] = None
        self.special = False
        self.aggregation: Any = None
        self.device_bucketing = False
        self.enrollment = False
        self.holdout: Optional[Tuple[float, str]] = None
        self.conditions: Tuple[Condition, ...] = ()
        self.early_exit = False
        self.variants: List[Tuple[float, float, Any]] = []
        self.variant_keys: List[Any] = []
        self.payloads: Dict[Any, Any] = {}
        filters = raw.get("filters") or {}
        if not isinstance(filters, dict):
            self.problem = "its filters are not an object"
            return
        self.aggregation = filters.get("aggregation_group_type_index")
        identifier = raw.get("bucketing_identifier") or filters.get("bucketing_identifier")
        self.device_bucketing = identifier == "device_id"
        self.enrollment = filters.get("feature_enrollment") is True
        self.early_exit = bool(filters.get("early_exit"))
        payloads = filters.get("payloads") or {}
        self.payloads = payloads if isinstance(payloads, dict) else {}
        self._read_holdout(filters.get("holdout"))
        self._read_variants(filters.get("multivariate"))
        #: Anything to look at before the conditions (most flags have nothing).
        self.special = bool(self.enrollment or self.holdout or self.holdout_problem or self.variants_problem)
        groups = filters.get("groups") or []
        if isinstance(groups, list):
            self.conditions = tuple(
                Condition(i, spec, self.aggregation, matching_version) for i, spec in enumerate(groups, 1)
            )
        else:
            self.conditions = (Condition(1, None, self.aggregation, matching_version),)

    def _read_holdout(self, holdout: Any) -> None:
        if not holdout:
            return
        if not isinstance(holdout, dict):
            self.holdout_problem = "its holdout is not an object"
            return
        percentage, holdout_id = holdout.get("exclusion_percentage"), holdout.get("id")
        if percentage is None or holdout_id is None:
            return
        try:
            share = min(max(float(percentage), 0.0), 100.0)
        except (TypeError, ValueError):
            self.holdout_problem = "its holdout exclusion_percentage is not a number"
            return
        self.holdout = (share, f"holdout-{holdout_id}")

    def _read_variants(self, multivariate: Any) -> None:
        multivariate = multivariate or {}
        if not isinstance(multivariate, dict):
            self.variants_problem = "its multivariate is not an object"
            return
        variants = multivariate.get("variants") or []
        try:
            self.variant_keys = [variant["key"] for variant in variants]
        except (KeyError, TypeError):
            self.variants_problem = "a variant has no key"
            return
        low = 0.0
        try:
            for variant in variants:
                high = low + variant["rollout_percentage"] / 100
                self.variants.append((low, high, variant["key"]))
                low = high
        except (KeyError, TypeError):
            self.variants = []
            self.table_problem = "a variant has no numeric rollout_percentage"

    def payload(self, value: Any) -> Any:
        """The raw payload for a value: ``"true"``/``"false"`` for booleans, the variant name else."""
        if not self.payloads:
            return None
        return self.payloads.get(("true" if value else "false") if isinstance(value, bool) else str(value))


class Definitions:
    """What one ``/flags/definitions`` response holds, compiled; immutable once built."""

    def __init__(
        self,
        flags: Sequence[Dict[str, Any]] = (),
        group_type_mapping: Optional[Mapping[str, str]] = None,
        cohorts: Optional[Mapping[str, Any]] = None,
        property_matching_version: int = 1,
        extra: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.raw_flags = list(flags)
        self.group_type_mapping: Dict[str, str] = dict(group_type_mapping or {})
        self.raw_cohorts: Dict[str, Any] = dict(cohorts or {})
        self.property_matching_version = property_matching_version
        self.extra = dict(extra or {})
        #: What was left out, and why: one line per unreadable flag (PostHog decides those).
        self.skipped: List[str] = []
        self.flags = [flag for flag in map(self._compile, enumerate(self.raw_flags)) if flag is not None]
        self.by_key: Dict[Any, Flag] = {flag.key: flag for flag in self.flags if flag.key is not None}
        self.cohorts = {str(k): _cohort(v, property_matching_version) for k, v in self.raw_cohorts.items()}
        if self.skipped:
            count_drop("unreadable_flag_definition", len(self.skipped))
        for flag in self.flags:
            flag.reason = _definition_reason(flag, self)

    def _compile(self, numbered: Tuple[int, Any]) -> Optional[Flag]:
        index, raw = numbered
        key = raw.get("key") if isinstance(raw, dict) else None
        try:
            if not isinstance(raw, dict):
                raise _Unreadable("it is not an object")
            if key is not None and not isinstance(key, str):
                raise _Unreadable("its key is not text")
            return Flag(raw, self.property_matching_version)
        except Exception as problem:  # a shape no SDK expects: this flag only is PostHog's to decide
            why = str(problem) if isinstance(problem, _Unreadable) else "%s while reading it" % type(problem).__name__
            self.skipped.append("flag %s: %s" % (repr(key)[:60] if key is not None else "#%d" % index, why))
            return None

    @classmethod
    def from_response(cls, data: Any) -> "Definitions":
        """Read a ``/flags/definitions`` body; ValueError (saying what is wrong) if unusable."""
        if not isinstance(data, dict):
            raise ValueError("the body is not a JSON object")
        flags = data.get("flags")
        if not isinstance(flags, list):
            raise ValueError("flags is not a list")
        mapping = data.get("group_type_mapping") or {}
        cohorts = data.get("cohorts") or {}
        if not isinstance(mapping, dict) or not isinstance(cohorts, dict):
            raise ValueError("group_type_mapping or cohorts is not an object")
        version = data.get("property_matching_version", 1)
        known = ("flags", "group_type_mapping", "cohorts", "property_matching_version")
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(flags, mapping, cohorts, version, extra)

    @property
    def empty(self) -> bool:
        return not self.raw_flags

    def to_response(self) -> Dict[str, Any]:
        """The definitions back in PostHog's response shape (what the local server serves)."""
        return {
            "flags": self.raw_flags,
            "group_type_mapping": self.group_type_mapping,
            "cohorts": self.raw_cohorts,
            "property_matching_version": self.property_matching_version,
            **self.extra,
        }


#: What a refused key or quota leaves: no flag is evaluated here, every one is asked of ``/flags``.
CLEARED = Definitions()


# --- what the definition alone leaves undecidable (reported, not evaluated) -------------------


class _Unreadable(Exception):
    pass


def _cohort(spec: Any, matching_version: int) -> CohortGroup:
    """A cohort's group; one that fails to compile is PostHog's to decide, not everyone's problem."""
    try:
        return CohortGroup(spec, matching_version)
    except Exception as problem:
        group = CohortGroup({}, matching_version)
        group.problem = "the cohort could not be read (%s)" % type(problem).__name__
        return group


def _definition_reason(flag: Flag, definitions: Definitions) -> Optional[Reason]:
    """PostHog's ``unsupported_definition`` / ``experience_continuity`` for a flag, known at load.

    None also when the definition is too malformed to tell (PostHog's SDK gives up there too).
    """
    if not flag.active:
        return None
    if flag.continuity:
        return Reason.EXPERIENCE_CONTINUITY
    try:
        if flag.problem:
            raise _Unreadable()
        aggregation = flag.aggregation
        if aggregation is not None and not definitions.group_type_mapping.get(str(aggregation)):
            return Reason.UNSUPPORTED_DEFINITION
        for condition in flag.conditions:
            if condition.problem:
                raise _Unreadable()
            if any(_unsupported(f, definitions, set()) for f in condition.filters):
                return Reason.UNSUPPORTED_DEFINITION
    except (_Unreadable, TypeError):
        return None
    return None


def _unsupported(item: Any, definitions: Definitions, seen: Set[Any]) -> bool:
    if isinstance(item, BrokenFilter):
        raise _Unreadable()
    if isinstance(item, DependencyFilter):
        if item.malformed:
            return False  # a malformed dependency is a definite no-match, not a gap
        return bool(item.chain_problem) or any(key not in definitions.by_key for key in item.chain)
    if isinstance(item, CohortFilter):
        group = definitions.cohorts.get(item.cohort_id)
        if group is None or item.operator not in COHORT_OPERATORS:
            return True
        if item.cohort_id in seen:
            return False
        seen.add(item.cohort_id)
        return _unsupported(group, definitions, seen)
    if isinstance(item, CohortGroup):
        if item.problem:
            return True
        for entry in item.entries:
            if isinstance(entry, str) or _unsupported(
                entry if isinstance(entry, CohortGroup) else entry[0], definitions, seen
            ):
                return True
        return False
    return not item.supported
