"""``unset``: remove person properties (PostHog's ``$unset``).

PostHog's Python SDK has no call for it (code hands ``{"$unset": [...]}`` to ``capture``);
posthog-node has ``unsetPersonProperties({distinctId, properties})``, which sends a ``$set``
event whose properties hold ``$unset: [names]``. This is that call, through the schema
(``posthog.unset``: the body is the list of names), so the names reach PostHog in order
with the person's other operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, List, Optional

from . import _personless
from . import _schema as schema
from ._context import current_scope
from ._guard import Dropped
from ._log import count_drop, warn_limited
from ._operation import _finish, _resolve
from ._text import Unusable, as_text, describe


def unset(
    target: Any, distinct_id: Any, properties: Any, timestamp: Any, uuid: Any, disable_geoip: Any
) -> Optional[str]:
    """``Operations.unset``: one ``posthog.unset`` record, or ``Dropped``."""
    if properties is None and _is_names(distinct_id):
        distinct_id, properties = None, distinct_id  # unset(['plan']): the context's person
    scope = current_scope()
    person = _resolve(distinct_id, scope)
    if person is None:
        raise Dropped("no_distinct_id", "without a distinct_id (argument or identify_context()) it does nothing%s",
                      _personless.hint(scope))  # fmt: skip
    names = property_names(properties)
    if not names:
        raise Dropped("no_properties", "needs the names of the properties to remove (a name or a list of names)")
    attributes = {schema.DISTINCT_ID: person}
    return _finish(target, schema.UNSET, "unset", attributes, names, scope, timestamp, uuid, disable_geoip)


def _is_names(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, frozenset))


def property_names(value: Any) -> List[str]:
    """The names to remove, as text, in the order given: one name, or a list (tuple, set) of them.

    posthog-node's rule: a name that is blank is left out. A name that cannot be text is left
    out too, said and counted (``invalid_property``); a map is refused (its keys are not names
    to remove by accident).
    """
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    elif isinstance(value, Mapping) or not _is_names(value):
        count_drop("invalid_property")
        warn_limited("unset:names", "posthog_otel: unset(): properties must be a name or a list of names, not %s; "
                     "nothing is removed", describe(value))  # fmt: skip
        return []
    names = []
    for name in value:
        try:
            text = as_text(name)
        except Unusable as problem:
            count_drop("invalid_property")
            warn_limited("unset:name", "posthog_otel: unset(): the property name %s %s; it is left out",
                         describe(name), problem)  # fmt: skip
            continue
        if text.strip():
            names.append(text)
    return names
