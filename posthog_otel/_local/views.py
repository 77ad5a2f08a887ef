"""What the web pages read from the store beyond the CLI's lists: histories, a person's
groups, a group's members, person search."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .reads import event_record
from .store import Store

#: A change row with the distinct id of the event that made it.
_CHANGES = (
    "SELECT c.key, c.value, c.operation, c.applied, c.event, c.event_uuid, c.timestamp, e.distinct_id"
    " FROM property_changes c LEFT JOIN events e ON e.project = c.project AND e.uuid = c.event_uuid"
)


def person_history(store: Store, person_id: int) -> Dict[str, List[Dict[str, Any]]]:
    """Each key's changes, oldest first (``history`` says what a row means)."""
    return _by_key(store.query(_CHANGES + " WHERE c.person_id = ? ORDER BY c.id", [person_id]))


def group_history(store: Store, project: str, group_type: str, group_key: str) -> Dict[str, List[Dict[str, Any]]]:
    sql = _CHANGES + " WHERE c.project = ? AND c.group_type = ? AND c.group_key = ? ORDER BY c.id"
    return _by_key(store.query(sql, [project, group_type, group_key]))


def _by_key(rows: Sequence[Any]) -> Dict[str, List[Dict[str, Any]]]:
    history: Dict[str, List[Dict[str, Any]]] = {}
    for row in rows:
        history.setdefault(json.loads(row["key"]), []).append(
            {
                "value": None if row["value"] is None else json.loads(row["value"]),
                "operation": row["operation"],
                "applied": bool(row["applied"]),
                "event": row["event"],
                "uuid": row["event_uuid"],
                "timestamp": row["timestamp"],
                "distinct_id": row["distinct_id"],
            }
        )
    return history


def person_groups(store: Store, person_id: int) -> List[Tuple[str, str]]:
    """The groups a person's events were sent with (``$groups``) or whose properties it set."""
    rows = store.query(
        "SELECT eg.group_type, eg.group_key FROM event_groups eg JOIN events e ON e.seq = eg.seq WHERE e.person_id = ?"
        " UNION SELECT c.group_type, c.group_key FROM property_changes c"
        " JOIN events e ON e.project = c.project AND e.uuid = c.event_uuid"
        " WHERE e.person_id = ? AND c.group_type IS NOT NULL ORDER BY 1, 2",
        [person_id, person_id],
    )
    return [(row[0], row[1]) for row in rows]


#: The events of a group: sent with it (``$groups``), or setting its properties.
_OF_GROUP = (
    "(e.seq IN (SELECT seq FROM event_groups WHERE project = ? AND group_type = ? AND group_key = ?)"
    " OR (e.project = ? AND e.uuid IN (SELECT event_uuid FROM property_changes"
    " WHERE project = ? AND group_type = ? AND group_key = ?)))"
)


def _of_group(project: str, group_type: str, group_key: str) -> List[Any]:
    return [project, group_type, group_key, project, project, group_type, group_key]


def group_members(store: Store, project: str, group_type: str, group_key: str) -> List[Dict[str, Any]]:
    """Each distinct id seen in the group's events or setting its properties, with its person."""
    rows = store.query(
        "SELECT e.distinct_id, e.person_id, count(*) AS events, max(e.timestamp) AS last_seen FROM events e"
        " WHERE %s GROUP BY e.distinct_id, e.person_id ORDER BY e.distinct_id" % _OF_GROUP,
        _of_group(project, group_type, group_key),
    )
    return [dict(row) for row in rows]


def search_persons(store: Store, project: Optional[str], text: str) -> List[Dict[str, Any]]:
    """Persons with ``text`` (any case) in a distinct id or a property value or name."""
    persons = store.persons(project)
    wanted = text.strip().lower()
    if not wanted:
        return persons
    return [p for p in persons if wanted in _searchable(p)]


def _searchable(person: Dict[str, Any]) -> str:
    words = list(person["distinct_ids"])
    for key, value in person["properties"].items():
        words += [key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)]
    return "\n".join(words).lower()


def group_events(store: Store, project: str, group_type: str, group_key: str, limit: int) -> List[Dict[str, Any]]:
    """The latest ``limit`` events sent with the group or setting its properties, oldest first."""
    rows = store.query(
        "SELECT * FROM events e WHERE %s ORDER BY e.seq DESC LIMIT ?" % _OF_GROUP,
        [*_of_group(project, group_type, group_key), limit],
    )
    return [event_record(row) for row in reversed(rows)]


def event_names(store: Store, project: str) -> List[str]:
    return [row[0] for row in store.query("SELECT DISTINCT event FROM events WHERE project = ? ORDER BY 1", [project])]
