"""A project's persons as events change them, following PostHog's person processing.

- ``$set`` overwrites, ``$set_once`` writes only missing keys, ``$unset`` removes keys
  (read from the event's top level and from ``properties``);
- a merge (``$create_alias``, ``$merge_dangerously``, ``$identify``) is PostHog's
  mergeDistinctIds: one person if neither id exists, the missing id added if one exists,
  and for two persons a merge where the target's properties win, refused when the other
  person is already identified (unless dangerously) or an id names a class of users.

``Persons`` works inside the store's transaction, on its connection (``ingest.Batch``).
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from typing import Any, Dict, Iterable, List, Optional, cast

from . import history
from .history import Origin

#: Distinct ids PostHog refuses to merge (they name a class of users, not one).
ILLEGAL_IDS = frozenset(
    {
        "anonymous", "guest", "distinctid", "distinct_id", "id", "not_authenticated", "email",
        "undefined", "true", "false", "0", "null", "nan", "none", "[object object]", "",
    }
)  # fmt: skip


class Persons:
    """One project's persons and their distinct ids, on ``db``."""

    def __init__(self, db: sqlite3.Connection, project: str) -> None:
        self._db = db
        self._project = project

    def find(self, distinct_id: str) -> Optional[int]:
        """The id of the person ``distinct_id`` belongs to; None if none."""
        row = self._db.execute(
            "SELECT person_id FROM person_distinct_ids WHERE project = ? AND distinct_id = ?",
            (self._project, distinct_id),
        ).fetchone()
        return int(row[0]) if row is not None else None

    def find_or_new(self, distinct_id: str) -> int:
        found = self.find(distinct_id)
        return found if found is not None else self._new([distinct_id], {}, identified=False)

    def merge(self, other_id: str, into_id: str, origin: Origin, dangerously: bool = False) -> Optional[str]:
        """PostHog's mergeDistinctIds; returns the counter naming why the merge was refused, else None."""
        if other_id == into_id:
            return None
        if other_id.strip().lower() in ILLEGAL_IDS or into_id.strip().lower() in ILLEGAL_IDS:
            return "merges_refused_illegal_id"
        other, into = self.find(other_id), self.find(into_id)
        if other is None and into is None:
            self._new([into_id, other_id], {}, identified=True)
        elif into is None:
            assert other is not None
            self._link(into_id, other)
            self._set_identified(other)
        elif other is None:
            self._link(other_id, into)
            self._set_identified(into)
        elif other != into:
            if self._row(other)["is_identified"] and not dangerously:
                return "merges_refused_already_identified"
            self._merge_persons(other, into, origin)
        else:
            self._set_identified(into)
        return None

    def update(self, person_id: int, event: Dict[str, Any], properties: Dict[str, Any], origin: Origin) -> None:
        """Apply the event's ``$set_once``, ``$set`` and ``$unset``, recording each change."""
        set_once = {**as_dict(properties.get("$set_once")), **as_dict(event.get("$set_once"))}
        set_ = {**as_dict(properties.get("$set")), **as_dict(event.get("$set"))}
        unset = properties.get("$unset") or event.get("$unset") or []
        if not (set_once or set_ or unset):
            return
        current = json.loads(self._row(person_id)["properties"])
        updated = dict(current)
        changes: List[history.Change] = []
        for key, value in set_once.items():
            changes.append((key, value, "$set_once", key not in updated))
            updated.setdefault(key, value)
        for key, value in set_.items():
            changes.append((key, value, "$set", True))
            updated[key] = value
        for key in unset if isinstance(unset, list) else []:
            changes.append((str(key), None, "$unset", str(key) in updated))
            updated.pop(str(key), None)
        history.record_person(self._db, self._project, person_id, origin, changes)
        if updated != current:
            self._db.execute(
                "UPDATE persons SET properties = ?, updated_at = ? WHERE id = ?",
                (json.dumps(updated), now(), person_id),
            )

    def _merge_persons(self, other: int, into: int, origin: Origin) -> None:
        """``other`` into ``into``: the target's properties win, ids and events move, ``other`` goes."""
        other_row, into_row = self._row(other), self._row(into)
        other_properties, into_properties = json.loads(other_row["properties"]), json.loads(into_row["properties"])
        merged = {**other_properties, **into_properties}
        history.merge_persons(self._db, self._project, other, into, origin, other_properties, into_properties)
        created = min(other_row["created_at"], into_row["created_at"])
        self._db.execute(
            "UPDATE persons SET properties = ?, is_identified = 1, created_at = ?, updated_at = ? WHERE id = ?",
            (json.dumps(merged), created, now(), into),
        )
        self._db.execute("UPDATE person_distinct_ids SET person_id = ? WHERE person_id = ?", (into, other))
        self._db.execute("UPDATE events SET person_id = ? WHERE person_id = ?", (into, other))
        self._db.execute("DELETE FROM persons WHERE id = ?", (other,))

    def _new(self, distinct_ids: Iterable[str], properties: Dict[str, Any], identified: bool) -> int:
        moment = now()
        cursor = self._db.execute(
            "INSERT INTO persons (project, properties, is_identified, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            (self._project, json.dumps(properties), int(identified), moment, moment),
        )
        person_id = int(cursor.lastrowid or 0)
        for distinct_id in distinct_ids:
            self._link(distinct_id, person_id)
        return person_id

    def _link(self, distinct_id: str, person_id: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO person_distinct_ids (project, distinct_id, person_id) VALUES (?, ?, ?)",
            (self._project, distinct_id, person_id),
        )

    def _set_identified(self, person_id: int) -> None:
        self._db.execute("UPDATE persons SET is_identified = 1 WHERE id = ?", (person_id,))

    def _row(self, person_id: int) -> sqlite3.Row:
        row = self._db.execute("SELECT * FROM persons WHERE id = ?", (person_id,)).fetchone()
        return cast(sqlite3.Row, row)  # the database's row_factory; the id is of a person just found


def as_dict(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()
