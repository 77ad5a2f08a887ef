"""``$feature_flag_called``: what a flag read reports, once per person, flag, value and groups.

The event goes through the pipeline like any ``capture``. As in PostHog's SDK, a read is
reported once per (distinct id, flag, value, groups): a person who reads the same flag a
thousand times a minute costs one event, and a changed value or another group is
reported again. The memory of what was reported is bounded: past ``MAX_PEOPLE`` distinct
ids the one reported longest ago is forgotten (and would be reported again).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable, Dict, Mapping, Optional, Set, Tuple

from .. import _state

MAX_PEOPLE = 50_000  # PostHog's SDK's bound


class CalledEvents:
    def __init__(self, max_people: int = MAX_PEOPLE) -> None:
        self.max_people = max_people
        self._reported: "OrderedDict[str, Set[Tuple[Any, ...]]]" = OrderedDict()
        self._lock = threading.Lock()
        _live.add(self)

    def __len__(self) -> int:
        return len(self._reported)

    def first_time(self, person: str, key: str, response: Any, groups: Optional[Mapping[str, Any]]) -> bool:
        """Record the read; True when this (person, flag, value, groups) was not reported yet."""
        seen = (key, response, _groups_key(groups))
        with self._lock:
            reported = self._reported.get(person)
            if reported is None:
                while len(self._reported) >= self.max_people:
                    self._reported.popitem(last=False)
                reported = self._reported[person] = set()
            elif seen in reported:
                return False
            reported.add(seen)
            return True

    def report(
        self,
        person: str,
        key: str,
        response: Any,
        properties: Dict[str, Any],
        groups: Optional[Mapping[str, Any]],
        disable_geoip: Optional[bool],
        capture: Optional[Callable[..., Any]] = None,
    ) -> None:
        """Capture ``$feature_flag_called`` unless this read was reported already."""
        if self.first_time(person, key, response, groups):
            send(person, properties, groups, disable_geoip, capture)

    def after_fork(self) -> None:
        self._lock = threading.Lock()  # the parent's may be held by a thread the child does not have


_live: "weakref.WeakSet[CalledEvents]" = weakref.WeakSet()


@_state.at_fork
def _after_fork_in_child() -> None:
    for store in list(_live):
        store.after_fork()


def send(
    person: str,
    properties: Dict[str, Any],
    groups: Optional[Mapping[str, Any]],
    disable_geoip: Optional[bool],
    capture: Optional[Callable[..., Any]] = None,
) -> None:
    """Capture one ``$feature_flag_called`` (already checked against the store), with the
    module's ``capture`` or the Client's whose flags these are."""
    capture = capture or _state.module_capture
    assert capture is not None  # set by _emit, which the package imports before any flag call
    capture(person, "$feature_flag_called", properties, groups=groups or None, disable_geoip=disable_geoip)


def _groups_key(groups: Optional[Mapping[str, Any]]) -> Tuple[Tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in groups.items())) if groups else ()


def called_properties(key: str, response: Any, locally_evaluated: bool, payload: Any = None) -> Dict[str, Any]:
    """The properties every ``$feature_flag_called`` carries."""
    properties: Dict[str, Any] = {
        "$feature_flag": key,
        "$feature_flag_response": response,
        "locally_evaluated": locally_evaluated,
        "$feature/%s" % key: response,
    }
    if payload is not None:
        properties["$feature_flag_payload"] = payload
    return properties
