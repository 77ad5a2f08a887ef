"""What the parts of one flag evaluation (``conditions``, ``cohorts``, ``dependencies``) see of it.

A Protocol rather than the ``Evaluation`` class itself, so that those modules need not import
the evaluator that imports them.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Protocol, Tuple, Union

from .definitions import Definitions, Flag
from .results import FlagValue

Trace = List[Tuple[int, str]]


class EvaluationState(Protocol):
    definitions: Definitions
    groups: Mapping[str, Any]
    group_properties: Mapping[str, Mapping[str, Any]]
    cache: Dict[Any, Optional[FlagValue]]
    cohorts: Dict[Tuple[str, int], Union[bool, Exception]]
    trace: Optional[Trace]

    def note(self, line: str, *args: Any) -> None: ...

    def bucketing_id(self, flag: Flag, distinct_id: Any) -> Any: ...

    def match(
        self, flag: Flag, distinct_id: Any, properties: Mapping[str, Any], bucketing_id: Any, groups_visible: bool
    ) -> FlagValue: ...

    def filter(self, item: Any, distinct_id: Any, properties: Mapping[str, Any]) -> bool: ...

    def nested(self, step: Any, *args: Any) -> Any: ...
