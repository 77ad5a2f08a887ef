"""Property filters, compiled once per definition load: ``compile_property(filter) -> PropertyFilter``.

Every operator PostHog's SDK evaluates locally is here: ``exact`` / ``is_not`` (a value
or a list), ``is_set`` / ``is_not_set``, ``icontains``, ``regex``, ``starts_with``,
``ends_with`` and their ``not_`` forms, ``gt`` / ``gte`` / ``lt`` / ``lte``,
``is_date_before`` / ``is_date_after`` (relative dates too), and the ``semver_*``
comparisons and ranges. The filter's own value is read once, at compile time; a call
pays only for reading its property.

``match(properties)`` returns True/False, or raises ``Undecidable``: the property is
missing or unusable (``MISSING_CONTEXT``), or the filter is not one local evaluation can
use (``UNSUPPORTED_DEFINITION``, which wins: a filter that can never be used is the
reason to report, not the missing property).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Type

from . import semver
from .dates import DateFilter, aware, parse_datetime
from .errors import DefinitionError, Reason, Undecidable
from .regex import RustRegex, compile_rust_regex, regex_search
from .values import as_number, as_text, ascii_lower, is_boolean_like, is_truthy

_ABSENT: Any = object()
_MISSING = Reason.MISSING_CONTEXT
_UNSUPPORTED = Reason.UNSUPPORTED_DEFINITION


class PropertyFilter:
    """A compiled ``{"key", "operator", "value"}`` filter on person or group properties."""

    kind = "property"
    __slots__ = ("key", "operator", "value", "supported", "problem")

    def __init__(self, key: Any, operator: str, value: Any) -> None:
        self.key = key
        self.operator = operator
        self.value = value
        self.supported = True
        self.problem = ""  # why the filter is unusable, when it is

    def unusable(self, why: str) -> None:
        self.supported = False
        self.problem = why

    def match(self, properties: Mapping[str, Any]) -> bool:
        try:
            value = properties.get(self.key, _ABSENT)
        except TypeError:
            raise DefinitionError("property filter key %r is not a string" % (self.key,)) from None
        if value is _ABSENT:
            raise self.blame("property %r was not given" % (self.key,))
        return self.check(value)

    def check(self, value: Any) -> bool:
        raise NotImplementedError

    def blame(self, why: str) -> Undecidable:
        """The call's inputs are unusable; unless the filter is too, which is reported instead."""
        if self.supported:
            return Undecidable(_MISSING, why)
        return Undecidable(_UNSUPPORTED, self.problem)

    def refuse(self) -> Undecidable:
        return Undecidable(_UNSUPPORTED, self.problem)

    def describe(self) -> str:
        return "%s %s %s" % (self.key, self.operator, _shown(self.value))


class _UnknownOperator(PropertyFilter):
    __slots__ = ()

    def __init__(self, key: Any, operator: str, value: Any) -> None:
        super().__init__(key, operator, value)
        self.unusable("operator %r is not one local evaluation knows" % (operator,))

    def match(self, properties: Mapping[str, Any]) -> bool:
        raise self.refuse()


class _IsSet(PropertyFilter):
    __slots__ = ()

    def check(self, value: Any) -> bool:
        return self.operator == "is_set"


class _Exact(PropertyFilter):
    """``exact`` / ``is_not``: text equal (case-insensitive) to the value or one of a list."""

    __slots__ = ("mode", "wanted")

    def __init__(self, key: Any, operator: str, value: Any, matching_version: int) -> None:
        super().__init__(key, operator, value)
        self.wanted: Tuple[str, ...] = ()
        if value == []:
            self.mode = "truthy"
        elif matching_version != 2 and is_boolean_like(value):
            self.mode = "boolean"
        else:
            self.mode = "text"
            try:
                items = value if isinstance(value, list) else [value]
                self.wanted = tuple(as_text(item, _UNSUPPORTED).lower() for item in items)
            except Undecidable as problem:
                self.unusable(problem.why)

    def check(self, value: Any) -> bool:
        try:
            text = as_text(value, _MISSING).lower()
        except Undecidable as problem:
            raise self.blame(problem.why) from None
        if self.mode == "truthy":
            found = is_truthy(value)
        elif self.mode == "boolean":
            found = is_truthy(self.value) == is_truthy(value)
        elif not self.supported:
            raise self.refuse()
        else:
            found = text in self.wanted
        return found if self.operator == "exact" else not found


class _Text(PropertyFilter):
    """``icontains``, ``starts_with``, ``ends_with`` and their negations, ASCII case-insensitive."""

    __slots__ = ("needle", "test", "negated")

    _TESTS: Dict[str, Callable[[str, str], bool]] = {
        "icontains": lambda text, needle: needle in text,
        "starts_with": str.startswith,
        "ends_with": str.endswith,
    }

    def __init__(self, key: Any, operator: str, value: Any) -> None:
        super().__init__(key, operator, value)
        self.negated = operator.startswith("not_")
        self.test = self._TESTS[operator[4:] if self.negated else operator]
        self.needle = ""
        try:
            self.needle = ascii_lower(value, _UNSUPPORTED)
        except Undecidable as problem:
            self.unusable(problem.why)

    def check(self, value: Any) -> bool:
        try:
            text = ascii_lower(value, _MISSING)
        except Undecidable as problem:
            raise self.blame(problem.why) from None
        if not self.supported:
            raise self.refuse()
        return self.test(text, self.needle) != self.negated


class _Regex(PropertyFilter):
    """``regex`` / ``not_regex``; see ``regex.py`` for which patterns are run here."""

    __slots__ = ("pattern", "regex", "invalid")

    def __init__(self, key: Any, operator: str, value: Any) -> None:
        super().__init__(key, operator, value)
        self.pattern = str(value)
        self.regex: Optional[RustRegex] = None
        self.invalid = False
        if self.pattern:
            try:
                self.regex = compile_rust_regex(self.pattern)
                self.invalid = self.regex is None
            except Undecidable as problem:
                self.unusable(problem.why)

    def check(self, value: Any) -> bool:
        try:
            text = as_text(value, _MISSING)
        except Undecidable as problem:
            raise self.blame(problem.why) from None
        if not self.pattern:
            found = True
        elif not self.supported:
            raise self.refuse()
        elif self.regex is None:
            return False  # a pattern Python rejects matches nothing, negated or not
        else:
            found = regex_search(self.regex, text)
        return found if self.operator == "regex" else not found


class _Numeric(PropertyFilter):
    __slots__ = ("bound",)

    _COMPARE: Dict[str, Callable[[float, float], bool]] = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }

    def __init__(self, key: Any, operator: str, value: Any) -> None:
        super().__init__(key, operator, value)
        bound = as_number(value)
        self.bound = 0.0 if bound is None else bound
        if bound is None:
            self.unusable("%r is not a finite number" % (value,))

    def check(self, value: Any) -> bool:
        if not self.supported:
            raise self.refuse()
        number = as_number(value)
        return number is not None and self._COMPARE[self.operator](number, self.bound)


class _Date(PropertyFilter):
    """``is_date_before`` / ``is_date_after``; a relative filter date (``-7d``) is worked out at each call."""

    __slots__ = ("date",)

    def __init__(self, key: Any, operator: str, value: Any) -> None:
        super().__init__(key, operator, value)
        self.date = DateFilter(value)
        try:
            self.date.moment()
        except Exception:
            self.unusable("%r is not a date" % (value,))

    def check(self, value: Any) -> bool:
        if value is None:
            return False
        try:
            at = self.date.moment()
        except Exception:
            raise Undecidable(_UNSUPPORTED, "%r is not a date" % (self.value,)) from None
        # Both sides are datetimes, or both dates (a date is compared with the bound's day).
        moment: _dt.date
        bound: _dt.date = at
        if isinstance(value, _dt.datetime):
            moment = aware(value)
        elif isinstance(value, _dt.date):
            moment, bound = value, at.date()
        elif isinstance(value, str):
            try:
                moment = aware(parse_datetime(value))
            except Exception:
                raise self.blame("%r is not a date" % (value,)) from None
        else:
            raise self.blame("a %s is not a date" % type(value).__name__)
        return moment < bound if self.operator == "is_date_before" else moment > bound


class _Semver(PropertyFilter):
    __slots__ = ("bounds",)

    _RANGES: Dict[str, Callable[[Any], semver.Range]] = {
        "semver_tilde": semver.tilde_range,
        "semver_caret": semver.caret_range,
        "semver_wildcard": semver.wildcard_range,
    }
    _COMPARE: Dict[str, Callable[[semver.Version, semver.Version], bool]] = {
        "semver_eq": lambda a, b: a == b,
        "semver_neq": lambda a, b: a != b,
        "semver_gt": lambda a, b: a > b,
        "semver_gte": lambda a, b: a >= b,
        "semver_lt": lambda a, b: a < b,
        "semver_lte": lambda a, b: a <= b,
    }

    def __init__(self, key: Any, operator: str, value: Any) -> None:
        super().__init__(key, operator, value)
        self.bounds: Any = None
        try:
            ranged = self._RANGES.get(operator)
            self.bounds = ranged(value) if ranged else semver.version(value)
        except (ValueError, TypeError):
            self.unusable("%r is not a version for %s" % (value, operator))

    def check(self, value: Any) -> bool:
        if value is None:
            return False
        if not self.supported:
            raise self.refuse()
        try:
            found = semver.version(value)
        except (ValueError, TypeError):
            raise self.blame("%r is not a version" % (value,)) from None
        if self.operator in self._RANGES:
            lower, upper = self.bounds
            return bool(lower <= found < upper)
        return self._COMPARE[self.operator](found, self.bounds)


_SIMPLE: Dict[str, Type[PropertyFilter]] = {
    "is_set": _IsSet,
    "is_not_set": _IsSet,
    **{
        op: _Text
        for op in ("icontains", "not_icontains", "starts_with", "not_starts_with", "ends_with", "not_ends_with")
    },
    **{op: _Regex for op in ("regex", "not_regex")},
    **{op: _Numeric for op in ("gt", "gte", "lt", "lte")},
    **{op: _Date for op in ("is_date_before", "is_date_after")},
    **{op: _Semver for op in (*_Semver._RANGES, *_Semver._COMPARE)},
}

OPERATORS = frozenset(_SIMPLE) | {"exact", "is_not"}


def compile_property(spec: Mapping[str, Any], matching_version: int) -> PropertyFilter:
    """A filter dict from PostHog's definitions, compiled; never raises."""
    key = spec.get("key")
    operator = spec.get("operator") or "exact"
    value = spec.get("value")
    if not isinstance(operator, str) or operator not in OPERATORS:
        return _UnknownOperator(key, str(operator), value)
    if operator in ("exact", "is_not"):
        return _Exact(key, operator, value, matching_version)
    return _SIMPLE[operator](key, operator, value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
