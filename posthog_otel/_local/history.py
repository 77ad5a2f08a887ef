"""Where each person and group property came from: one row per change, in arrival order.

The store writes a row for every key an event's ``$set``, ``$set_once`` or ``$unset``
touches on a person (a ``$set_once`` on a key already set is kept, marked not applied:
that is how a property "kept its first value" shows), and for every key of a
``$groupidentify``'s ``$group_set``.  When two persons merge, the other person's rows
move to the target, and where both held a key with different values a ``merge`` row
records the target's value winning, so the last applied row of a key is always the one
that produced its current value.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Dict, Sequence, Tuple

#: (key, value, operation, applied)
Change = Tuple[str, Any, str, bool]


@dataclass(frozen=True)
class Origin:
    """The event a change came from."""

    uuid: str
    event: str
    timestamp: str


def record_person(
    db: sqlite3.Connection, project: str, person_id: int, origin: Origin, changes: Sequence[Change]
) -> None:
    _record(db, project, (person_id, None, None), origin, changes)


def record_group(
    db: sqlite3.Connection, project: str, group_type: str, group_key: str, origin: Origin, changes: Sequence[Change]
) -> None:
    _record(db, project, (None, group_type, group_key), origin, changes)


def _record(
    db: sqlite3.Connection, project: str, subject: Tuple[Any, Any, Any], origin: Origin, changes: Sequence[Change]
) -> None:
    db.executemany(
        "INSERT INTO property_changes (project, person_id, group_type, group_key, key, value, operation, applied,"
        " event, event_uuid, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (project, *subject, json.dumps(key), None if operation == "$unset" else json.dumps(value), operation, int(applied),
             origin.event, origin.uuid, origin.timestamp)
            for key, value, operation, applied in changes
        ],
    )  # fmt: skip


def merge_persons(
    db: sqlite3.Connection,
    project: str,
    other: int,
    into: int,
    origin: Origin,
    other_properties: Dict[str, Any],
    into_properties: Dict[str, Any],
) -> None:
    """The other person's history joins the target's; keys where the target's value won say so."""
    db.execute("UPDATE property_changes SET person_id = ? WHERE person_id = ?", (into, other))
    kept = [
        (key, value, "merge", True)
        for key, value in into_properties.items()
        if key in other_properties and other_properties[key] != value
    ]
    record_person(db, project, into, origin, kept)
