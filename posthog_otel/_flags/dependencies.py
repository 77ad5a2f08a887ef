"""Flag dependencies: a filter on another flag's value.

The flags a filter depends on are evaluated along its ``dependency_chain``, each once per
flag evaluation (their values kept in ``Evaluation.cache``; None for one undecidable).
A malformed dependency never matches, and says so once per flag and problem.
"""

from __future__ import annotations

from typing import Any, Mapping, Set, Tuple

from .._log import logger
from .definitions import DependencyFilter
from .errors import DefinitionError, NeedsServer, Reason, Undecidable
from .steps import EvaluationState

_warned_dependencies: Set[Tuple[Any, str]] = set()


def dependency(ev: EvaluationState, item: DependencyFilter, distinct_id: Any, properties: Mapping[str, Any]) -> bool:
    """Whether the flag the filter names has the value it expects."""
    if item.malformed:
        _warn_malformed(item.flag_key, item.malformed)
        return False
    if item.chain_problem:
        raise Undecidable(Reason.UNSUPPORTED_DEFINITION, "dependency on %s: %s" % (item.flag_key, item.chain_problem))
    by_key, cache = ev.definitions.by_key, ev.cache
    try:
        missing = next((key for key in item.chain if key not in cache and key not in by_key), None)
    except TypeError:
        raise DefinitionError("a dependency_chain entry is not a flag key") from None
    if missing is not None:
        cache[missing] = None
        raise Undecidable(Reason.UNSUPPORTED_DEFINITION, "flag %s is not in the definitions" % (missing,))
    for key in item.chain:
        if key not in cache:
            ev.nested(_evaluate, ev, key, distinct_id, properties)
    actual = cache.get(item.flag_key)
    if actual is None:
        resolved = item.flag_key in by_key and item.flag_key in cache
        reason = Reason.UNRESOLVED_DEPENDENCY if resolved else Reason.UNSUPPORTED_DEFINITION
        raise Undecidable(reason, "flag %s could not be decided" % (item.flag_key,))
    matched = _dependency_matches(item.expected, actual)
    ev.note("%s: it is %r -> %s", item.describe(), actual, "match" if matched else "no match")
    return matched


def _evaluate(ev: EvaluationState, key: Any, distinct_id: Any, properties: Mapping[str, Any]) -> None:
    """One flag of the chain, its value (or None, undecidable) kept in the evaluation's cache."""
    flag = ev.definitions.by_key[key]
    if not flag.active:
        ev.cache[key] = False
        return
    if flag.continuity:
        ev.cache[key] = None
        raise Undecidable(Reason.UNRESOLVED_DEPENDENCY, "flag %s has experience continuity on" % (key,))
    if flag.problem:
        raise DefinitionError(flag.problem)
    ev.note("flag %s:", key)
    try:
        bucketing_id = distinct_id if flag.aggregation is not None else ev.bucketing_id(flag, distinct_id)
        ev.cache[key] = ev.match(flag, distinct_id, properties, bucketing_id, False)
    except NeedsServer as problem:
        raise NeedsServer(Reason.UNRESOLVED_DEPENDENCY, "flag %s: %s" % (key, problem.why)) from problem
    except Undecidable as problem:
        ev.cache[key] = None
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
