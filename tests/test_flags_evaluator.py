"""The evaluator on hand-written definitions: each case pins one of PostHog's rules.

``SCENARIOS`` are (definitions, flag, inputs, expected answer). The expected answers
are PostHog's SDK's: ``test_flags_oracle.py`` checks them against it. Here they run
against our evaluator alone, so they also run where that SDK cannot (Python 3.9).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Optional

import pytest

from posthog_otel._flags.definitions import Definitions
from posthog_otel._flags.errors import Reason, Undecidable
from posthog_otel._flags.evaluator import Evaluation, bucket
from posthog_otel._flags.properties import compile_property
from posthog_otel._flags.regex import compile_rust_regex
from posthog_otel._flags.values import as_text


def flag(key: str, *conditions: Dict[str, Any], **fields: Any) -> Dict[str, Any]:
    top = {k: fields.pop(k) for k in ("active", "ensure_experience_continuity", "bucketing_identifier") if k in fields}
    return {"id": 1, "key": key, "active": True, **top, "filters": {"groups": list(conditions), **fields}}


def when(*filters: Dict[str, Any], rollout: Optional[float] = 100, **extra: Any) -> Dict[str, Any]:
    return {"properties": list(filters), "rollout_percentage": rollout, **extra}


def person(key: str, operator: str, value: Any) -> Dict[str, Any]:
    return {"key": key, "operator": operator, "value": value, "type": "person"}


def cohort(cohort_id: Any, operator: str = "in") -> Dict[str, Any]:
    return {"key": "id", "type": "cohort", "value": cohort_id, "operator": operator}


def depends(
    key: str, value: Any, chain: Optional[List[str]] = None, operator: str = "flag_evaluates_to"
) -> Dict[str, Any]:
    return {
        "key": key,
        "type": "flag",
        "operator": operator,
        "value": value,
        "dependency_chain": [key] if chain is None else chain,
    }


def defs(*flags: Dict[str, Any], cohorts: Optional[Dict[str, Any]] = None, **extra: Any) -> Dict[str, Any]:
    return {"flags": list(flags), "group_type_mapping": {"0": "company"}, "cohorts": cohorts or {}, **extra}


PRO = person("plan", "exact", "pro")
MISSING = person("not_given", "exact", "x")
ACME_SIZE = {"key": "size", "operator": "gte", "value": 100, "type": "group", "group_type_index": 0}
VARIANTS = {"variants": [{"key": "control", "rollout_percentage": 50}, {"key": "test", "rollout_percentage": 50}]}
ACME = {"groups": {"company": "acme"}, "group_properties": {"company": {"size": 500}}}


def undecidable(reason: str) -> Any:
    return ("undecidable", reason)


#: (id, definitions, flag key, inputs, PostHog's answer)
SCENARIOS = [
    ("condition-matches", defs(flag("f", when(PRO))), "f", {"person_properties": {"plan": "pro"}}, True),
    (
        "exact-is-case-insensitive-text",
        defs(flag("f", when(person("plan", "exact", ["PRO", "x"])))),
        "f",
        {"person_properties": {"plan": "pro"}},
        True,
    ),
    ("missing-property-is-undecidable", defs(flag("f", when(PRO))), "f", {}, undecidable("missing_context")),
    (
        "a-false-filter-decides-despite-a-missing-one",
        defs(flag("f", when(MISSING, person("plan", "exact", "free")))),
        "f",
        {"person_properties": {"plan": "pro"}},
        False,
    ),
    (
        "a-later-condition-decides-after-an-undecidable-one",
        defs(flag("f", when(MISSING), when(PRO))),
        "f",
        {"person_properties": {"plan": "pro"}},
        True,
    ),
    ("rollout-zero-is-off", defs(flag("f", when(PRO, rollout=0))), "f", {"person_properties": {"plan": "pro"}}, False),
    (
        "early-exit-stops-at-a-rollout-miss",
        defs(flag("f", when(PRO, rollout=0), when(), early_exit=True)),
        "f",
        {"person_properties": {"plan": "pro"}},
        False,
    ),
    (
        "without-early-exit-a-later-condition-matches",
        defs(flag("f", when(PRO, rollout=0), when())),
        "f",
        {"person_properties": {"plan": "pro"}},
        True,
    ),
    (
        "static-cohort-ends-the-flag",
        defs(flag("f", when(cohort(99)), when())),
        "f",
        {},
        undecidable("unsupported_definition"),
    ),
    (
        "static-cohort-after-an-undecidable-filter-lets-later-conditions-decide",
        defs(flag("f", when(MISSING, cohort(99)), when())),
        "f",
        {},
        True,
    ),
    (
        "cohort-members",
        defs(flag("f", when(cohort(1))), cohorts={"1": {"type": "OR", "values": [PRO]}}),
        "f",
        {"person_properties": {"plan": "pro"}},
        True,
    ),
    (
        "not-in-cohort",
        defs(flag("f", when(cohort(1, "not_in"))), cohorts={"1": {"type": "OR", "values": [PRO]}}),
        "f",
        {"person_properties": {"plan": "free"}},
        True,
    ),
    (
        "cohort-evaluates-every-entry",
        defs(flag("f", when(cohort(1))), cohorts={"1": {"type": "OR", "values": [PRO, cohort(99)]}}),
        "f",
        {"person_properties": {"plan": "pro"}},
        undecidable("unsupported_definition"),
    ),
    (
        "cohort-negation",
        defs(flag("f", when(cohort(1))), cohorts={"1": {"type": "AND", "values": [dict(PRO, negation=True)]}}),
        "f",
        {"person_properties": {"plan": "free"}},
        True,
    ),
    # variant buckets of flag "f": user-1 0.443 (control), user-2 0.659 (test), device-9 0.505 (test)
    ("variant-by-bucket", defs(flag("f", when(), multivariate=VARIANTS)), "f", {"distinct_id": "user-1"}, "control"),
    (
        "variant-override",
        defs(flag("f", when(variant="control"), multivariate=VARIANTS)),
        "f",
        {"distinct_id": "user-2"},
        "control",
    ),
    (
        "unknown-variant-override-is-ignored",
        defs(flag("f", when(variant="nope"), multivariate=VARIANTS)),
        "f",
        {"distinct_id": "user-2"},
        "test",
    ),
    (
        "holdout-takes-everyone-at-100",
        defs(flag("f", when(), holdout={"id": 3, "exclusion_percentage": 100})),
        "f",
        {},
        "holdout-3",
    ),
    (
        "group-flag-for-the-named-group",
        defs(flag("f", when(ACME_SIZE), aggregation_group_type_index=0)),
        "f",
        ACME,
        True,
    ),
    (
        "group-flag-without-the-group-is-off",
        defs(flag("f", when(ACME_SIZE), aggregation_group_type_index=0)),
        "f",
        {},
        False,
    ),
    (
        "group-flag-of-an-unknown-group-type",
        defs(flag("f", when(), aggregation_group_type_index=5)),
        "f",
        ACME,
        undecidable("unsupported_definition"),
    ),
    (
        "group-condition-in-a-person-flag",
        defs(flag("f", when(ACME_SIZE, aggregation_group_type_index=0))),
        "f",
        ACME,
        True,
    ),
    (
        "group-condition-without-the-group-does-not-match",
        defs(flag("f", when(ACME_SIZE, aggregation_group_type_index=0))),
        "f",
        {},
        False,
    ),
    (
        "dependency-on-a-true-flag",
        defs(flag("base", when(PRO)), flag("f", when(depends("base", True)))),
        "f",
        {"person_properties": {"plan": "pro"}},
        True,
    ),
    (
        "dependency-on-a-variant",
        defs(flag("base", when(), multivariate=VARIANTS), flag("f", when(depends("base", "control")))),
        "f",
        {"distinct_id": "user-1"},
        True,
    ),
    (
        "dependency-is-evaluated-without-groups",
        defs(flag("base", when(ACME_SIZE, aggregation_group_type_index=0)), flag("f", when(depends("base", True)))),
        "f",
        ACME,
        False,
    ),
    (
        "malformed-dependency-never-matches",
        defs(flag("base", when()), flag("f", when(depends("base", True, operator="exact")))),
        "f",
        {},
        False,
    ),
    (
        "circular-dependency",
        defs(flag("f", when(depends("f", True, chain=[])))),
        "f",
        {},
        undecidable("unsupported_definition"),
    ),
    (
        "dependency-on-an-undecidable-flag",
        defs(flag("base", when(MISSING)), flag("f", when(depends("base", True)))),
        "f",
        {},
        undecidable("unresolved_dependency"),
    ),
    (
        "experience-continuity",
        defs(flag("f", when(), ensure_experience_continuity=True)),
        "f",
        {},
        undecidable("experience_continuity"),
    ),
    ("inactive-is-off", defs(flag("f", when(), active=False)), "f", {}, False),
    (
        "device-bucketing-needs-a-device-id",
        defs(flag("f", when(rollout=50), bucketing_identifier="device_id")),
        "f",
        {},
        undecidable("missing_context"),
    ),
    (
        "device-bucketing",
        defs(flag("f", when(), multivariate=VARIANTS, bucketing_identifier="device_id")),
        "f",
        {"distinct_id": "user-1", "device_id": "device-9"},
        "test",
    ),
    (
        "early-access-enrollment",
        defs(flag("f", when(), feature_enrollment=True)),
        "f",
        {"person_properties": {"$feature_enrollment/f": "true"}},
        True,
    ),
    (
        "empty-list-means-truthy",
        defs(flag("f", when(person("beta", "exact", [])))),
        "f",
        {"person_properties": {"beta": [True]}},
        True,
    ),
    (
        "boolean-matching-v1",
        defs(flag("f", when(person("beta", "exact", "TRUE")))),
        "f",
        {"person_properties": {"beta": True}},
        True,
    ),
    (
        "text-matching-v2",
        defs(flag("f", when(person("beta", "exact", "TRUE"))), property_matching_version=2),
        "f",
        {"person_properties": {"beta": "yes"}},
        False,
    ),
    (
        "is-not-set-with-the-property-missing",
        defs(flag("f", when(person("x", "is_not_set", "is_not_set")))),
        "f",
        {},
        undecidable("missing_context"),
    ),
    (
        "invalid-regex-matches-nothing",
        defs(flag("f", when(person("plan", "not_regex", "(")))),
        "f",
        {"person_properties": {"plan": "pro"}},
        False,
    ),
    (
        "regex-outside-the-shared-core",
        defs(flag("f", when(person("plan", "regex", "(?i)PRO")))),
        "f",
        {"person_properties": {"plan": "pro"}},
        undecidable("unsupported_definition"),
    ),
    (
        "relative-date",
        defs(flag("f", when(person("signup", "is_date_after", "-7d")))),
        "f",
        {"person_properties": {"signup": dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)}},
        True,
    ),
    (
        "semver-caret",
        defs(flag("f", when(person("app", "semver_caret", "0.2.3")))),
        "f",
        {"person_properties": {"app": "0.2.9"}},
        True,
    ),
    (
        "semver-caret-excludes-the-next-minor",
        defs(flag("f", when(person("app", "semver_caret", "0.2.3")))),
        "f",
        {"person_properties": {"app": "0.3.0"}},
        False,
    ),
    (
        "numbers-compare-as-numbers",
        defs(flag("f", when(person("age", "gt", "9")))),
        "f",
        {"person_properties": {"age": "10"}},
        True,
    ),
]


def local_answer(definitions: Dict[str, Any], key: str, given: Dict[str, Any]) -> Any:
    """What our evaluator answers, with the inputs completed the way the public calls complete them."""
    loaded = Definitions.from_response(definitions)
    distinct_id = given.get("distinct_id", "user-1")
    groups = given.get("groups", {})
    group_properties = {g: {"$group_key": k, **given.get("group_properties", {}).get(g, {})} for g, k in groups.items()}
    properties = dict(given.get("person_properties", {}))
    properties.setdefault("distinct_id", distinct_id)
    try:
        return Evaluation(loaded, distinct_id, groups, group_properties, given.get("device_id")).value(
            loaded.by_key[key], properties
        )
    except Undecidable as problem:
        return undecidable(problem.reason.value)


@pytest.mark.parametrize("definitions,key,given,expected", [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS])
def test_scenario(definitions, key, given, expected):
    assert local_answer(definitions, key, given) == expected


def test_bucket_is_sha1_of_key_and_id_over_2_to_the_60():
    # sha1("beta.user-1") starts 3b8d3ec2b6d1c35...; its first 15 hex digits over 0xFFFFFFFFFFFFFFF:
    import hashlib

    digits = hashlib.sha1(b"beta.user-1").hexdigest()[:15]
    assert bucket("beta", "user-1") == int(digits, 16) / 0xFFFFFFFFFFFFFFF
    assert bucket("beta", 42) == bucket("beta", "42")
    assert 0 <= bucket("x", "y", salt="variant") <= 1


@pytest.mark.parametrize(
    "value,text",
    [(True, "true"), (None, "null"), (1.0, "1.0"), (1e-05, "0.00001"), (1e16, "1e+16"), (1.5e-07, "1.5e-7"),
     ([1, "a", False], '[1,"a",false]'), ({"b": 1, "a": [None]}, '{"a":[null],"b":1}'), ("é", "é")],
)  # fmt: skip
def test_values_are_read_as_the_flag_service_writes_json(value, text):
    assert as_text(value, Reason.MISSING_CONTEXT) == text


@pytest.mark.parametrize("value", [float("nan"), dt.date(2024, 1, 1), {1: "a"}, {1, 2}])
def test_values_json_cannot_carry_are_undecidable(value):
    with pytest.raises(Undecidable) as problem:
        as_text(value, Reason.MISSING_CONTEXT)
    assert problem.value.reason is Reason.MISSING_CONTEXT


@pytest.mark.parametrize(
    "pattern", ["(?i)x", "\\bword", "(a+)+", "a{2}+", "[[:alpha:]]", "[\\d-z]", "[]", "a&&b]", "\\q"]
)
def test_patterns_outside_the_shared_regex_core_are_left_to_posthog(pattern):
    try:
        compile_rust_regex(pattern)
    except Undecidable as problem:
        assert problem.reason is Reason.UNSUPPORTED_DEFINITION
    else:
        assert pattern == "a&&b]"  # outside a class, && is plain text


def test_dollar_is_strict_at_the_end():
    regex = compile_rust_regex("pro$")
    assert regex is not None and regex.compiled.search("pro") and not regex.compiled.search("pro\n")


def test_a_bad_filter_is_reported_rather_than_the_missing_property():
    with pytest.raises(Undecidable) as problem:
        compile_property({"key": "age", "operator": "gt", "value": "many"}, 1).match({})
    assert problem.value.reason is Reason.UNSUPPORTED_DEFINITION


def test_trace_says_why():
    trace: List[Any] = []
    loaded = Definitions.from_response(defs(flag("f", when(PRO, rollout=50))))
    Evaluation(loaded, "user-1", {}, {}, trace=trace).value(loaded.by_key["f"], {"plan": "pro"})
    assert trace[0] == (0, "condition 1:")
    assert trace[1] == (1, "plan exact 'pro': 'pro' -> match")
    assert trace[2][0] == 1 and trace[2][1].startswith("rollout bucket ") and "the 50% rollout" in trace[2][1]
