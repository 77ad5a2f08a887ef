"""The local server's database: events, persons, groups, in SQLite.

Person and group processing follows PostHog's ingestion pipeline (see
``docs/local-server.md`` for the rules and where this differs):

- every event with person processing creates a person for its distinct id if none exists;
- ``$set`` overwrites, ``$set_once`` writes only missing keys, ``$unset`` removes keys
  (read from the event's top level and from ``properties``);
- ``$create_alias`` merges ``properties.alias`` into the person of the event's
  ``distinct_id``, ``$identify`` merges ``$anon_distinct_id`` into it: one person if
  neither exists, the missing id added if one exists, and for two persons a merge where
  the target's properties win, refused when the other person is already identified;
- ``$groupidentify`` merges ``$group_set`` into the group (shallow, last write wins) and
  applies no person properties;
- ``$process_person_profile: false`` events create and change no person;
- events are deduplicated on (project, uuid), as PostHog deduplicates on uuid.

One connection, one lock: requests are serialised, which is what SQLite does anyway,
and every batch is one transaction, so a batch is stored whole or not at all.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sqlite3
import threading
import uuid as _uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, cast

from .._config import redact
from . import history
from .database import default_path, open_database
from .history import Origin

#: Distinct ids PostHog refuses to merge (they name a class of users, not one).
ILLEGAL_IDS = frozenset(
    {
        "anonymous", "guest", "distinctid", "distinct_id", "id", "not_authenticated", "email",
        "undefined", "true", "false", "0", "null", "nan", "none", "[object object]", "",
    }
)  # fmt: skip


def project_of(api_key: str) -> str:
    """A stable, short name for the project a key belongs to; the key itself is never stored."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:12]


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    merges_refused: int = 0


class Store:
    """The database at ``path`` (default: ``default_path()``), kept per project.

    ``create=False`` opens an existing database without writing to it (the inspection
    commands); a path that cannot be used raises ``DatabaseError`` saying why.  Reads
    take ``project`` (``project_of(api_key)``); ``None`` reads every project.
    """

    def __init__(self, path: Any = None, create: bool = True) -> None:
        self.path = Path(path).expanduser() if path is not None else default_path()
        self._lock = threading.Lock()
        self._db = open_database(self.path, create)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writing ------------------------------------------------------------------

    def ingest(self, api_key: str, events: Sequence[Dict[str, Any]]) -> IngestResult:
        """Store one validated batch and apply its person and group updates, atomically."""
        project = project_of(api_key)
        received = _now()
        result = IngestResult()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO projects (project, key_hint, first_seen) VALUES (?, ?, ?)",
                    (project, redact(api_key), received),
                )
                for event in events:
                    self._ingest_one(project, event, received, result)
                self._bump("duplicates", result.duplicates)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return result

    def _ingest_one(self, project: str, event: Dict[str, Any], received: str, result: IngestResult) -> None:
        event_uuid = str(event.get("uuid") or _uuid.uuid4())
        seen = self._db.execute("SELECT 1 FROM events WHERE project = ? AND uuid = ?", (project, event_uuid))
        if seen.fetchone() is not None:  # a resend: PostHog keeps the first, and so do we
            result.duplicates += 1
            return
        properties = dict(event.get("properties") or {})
        name = event["event"]
        distinct_id = str(event["distinct_id"])[:200]
        origin = Origin(event_uuid, name, _normal_timestamp(event.get("timestamp"), received))
        personful = properties.get("$process_person_profile") is not False
        person_id: Optional[int] = None
        if personful:
            if name in ("$create_alias", "$merge_dangerously") and properties.get("alias") is not None:
                refused = self._merge(
                    project, str(properties["alias"]), distinct_id, origin, name == "$merge_dangerously"
                )
                result.merges_refused += refused
            elif name == "$identify" and properties.get("$anon_distinct_id") is not None:
                result.merges_refused += self._merge(project, str(properties["$anon_distinct_id"]), distinct_id, origin)
            person_id = self._person_or_new(project, distinct_id)
            if name != "$groupidentify":
                self._update_person(project, person_id, event, properties, origin)
        else:
            person_id = self._person_for(project, distinct_id, create=False)
        cursor = self._db.execute(
            "INSERT INTO events (project, uuid, event, distinct_id, person_id, timestamp, properties,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                project,
                event_uuid,
                name,
                distinct_id,
                person_id,
                origin.timestamp,
                json.dumps(_stored_properties(event, properties)),
                received,
            ),
        )
        result.accepted += 1
        seq = cursor.lastrowid
        groups = properties.get("$groups")
        if isinstance(groups, dict):
            self._db.executemany(
                "INSERT INTO event_groups (seq, project, group_type, group_key) VALUES (?, ?, ?, ?)",
                [(seq, project, str(t), str(k)) for t, k in groups.items() if k is not None],
            )
        if name == "$groupidentify" and personful:
            self._upsert_group(project, properties, received, origin)

    def _person_for(self, project: str, distinct_id: str, create: bool) -> Optional[int]:
        row = self._db.execute(
            "SELECT person_id FROM person_distinct_ids WHERE project = ? AND distinct_id = ?", (project, distinct_id)
        ).fetchone()
        if row is not None:
            return int(row[0])
        if not create:
            return None
        return self._new_person(project, [distinct_id], {}, identified=False)

    def _person_or_new(self, project: str, distinct_id: str) -> int:
        found = self._person_for(project, distinct_id, create=False)
        return found if found is not None else self._new_person(project, [distinct_id], {}, identified=False)

    def _new_person(
        self, project: str, distinct_ids: Iterable[str], properties: Dict[str, Any], identified: bool
    ) -> int:
        now = _now()
        cursor = self._db.execute(
            "INSERT INTO persons (project, properties, is_identified, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            (project, json.dumps(properties), int(identified), now, now),
        )
        person_id = int(cursor.lastrowid or 0)
        for distinct_id in distinct_ids:
            self._link(project, distinct_id, person_id)
        return person_id

    def _link(self, project: str, distinct_id: str, person_id: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO person_distinct_ids (project, distinct_id, person_id) VALUES (?, ?, ?)",
            (project, distinct_id, person_id),
        )

    def _merge(self, project: str, other_id: str, into_id: str, origin: Origin, dangerously: bool = False) -> int:
        """PostHog's mergeDistinctIds; returns 1 when the merge was refused, else 0."""
        if other_id == into_id:
            return 0
        if other_id.strip().lower() in ILLEGAL_IDS or into_id.strip().lower() in ILLEGAL_IDS:
            self._bump("merges_refused_illegal_id", 1)
            return 1
        other = self._person_for(project, other_id, create=False)
        into = self._person_for(project, into_id, create=False)
        if other is None and into is None:
            self._new_person(project, [into_id, other_id], {}, identified=True)
        elif into is None:
            assert other is not None
            self._link(project, into_id, other)
            self._set_identified(other)
        elif other is None:
            self._link(project, other_id, into)
            self._set_identified(into)
        elif other != into:
            other_row = self._person_row(other)
            if other_row["is_identified"] and not dangerously:
                self._bump("merges_refused_already_identified", 1)
                return 1
            into_row = self._person_row(into)
            other_properties, into_properties = json.loads(other_row["properties"]), json.loads(into_row["properties"])
            merged = {**other_properties, **into_properties}
            history.merge_persons(self._db, project, other, into, origin, other_properties, into_properties)
            created = min(other_row["created_at"], into_row["created_at"])
            self._db.execute(
                "UPDATE persons SET properties = ?, is_identified = 1, created_at = ?, updated_at = ? WHERE id = ?",
                (json.dumps(merged), created, _now(), into),
            )
            self._db.execute("UPDATE person_distinct_ids SET person_id = ? WHERE person_id = ?", (into, other))
            self._db.execute("UPDATE events SET person_id = ? WHERE person_id = ?", (into, other))
            self._db.execute("DELETE FROM persons WHERE id = ?", (other,))
        else:
            self._set_identified(into)
        return 0

    def _set_identified(self, person_id: int) -> None:
        self._db.execute("UPDATE persons SET is_identified = 1 WHERE id = ?", (person_id,))

    def _person_row(self, person_id: int) -> sqlite3.Row:
        row = self._db.execute("SELECT * FROM persons WHERE id = ?", (person_id,)).fetchone()
        return cast(sqlite3.Row, row)  # the database's row_factory; the id is of a person just found

    def _update_person(
        self, project: str, person_id: int, event: Dict[str, Any], properties: Dict[str, Any], origin: Origin
    ) -> None:
        set_once = {**_as_dict(properties.get("$set_once")), **_as_dict(event.get("$set_once"))}
        set_ = {**_as_dict(properties.get("$set")), **_as_dict(event.get("$set"))}
        unset = properties.get("$unset") or event.get("$unset") or []
        if not (set_once or set_ or unset):
            return
        current = json.loads(self._person_row(person_id)["properties"])
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
        history.record_person(self._db, project, person_id, origin, changes)
        if updated != current:
            self._db.execute(
                "UPDATE persons SET properties = ?, updated_at = ? WHERE id = ?",
                (json.dumps(updated), _now(), person_id),
            )

    def _upsert_group(self, project: str, properties: Dict[str, Any], received: str, origin: Origin) -> None:
        group_type, group_key = properties.get("$group_type"), properties.get("$group_key")
        if group_type is None or group_key is None:
            return
        key = (project, str(group_type), str(group_key))
        row = self._db.execute(
            "SELECT properties FROM groups WHERE project = ? AND group_type = ? AND group_key = ?", key
        ).fetchone()
        group_set = _as_dict(properties.get("$group_set"))
        merged = {**(json.loads(row[0]) if row else {}), **group_set}
        changes = [(k, v, "$group_set", True) for k, v in group_set.items()]
        history.record_group(self._db, project, key[1], key[2], origin, changes)
        if row is None:
            self._db.execute(
                "INSERT INTO groups (project, group_type, group_key, properties, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (*key, json.dumps(merged), received, received),
            )
        else:
            self._db.execute(
                "UPDATE groups SET properties = ?, updated_at = ? WHERE project = ? AND group_type = ? AND group_key = ?",
                (json.dumps(merged), received, *key),
            )

    def _bump(self, name: str, n: int) -> None:
        if n:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
                (name, n, n),
            )

    # --- reading ------------------------------------------------------------------

    def query(self, sql: str, args: Sequence[Any] = ()) -> List[sqlite3.Row]:
        """Rows of one read (the web pages' own queries are in ``views``)."""
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def clear_project(self, project: str) -> None:
        """Forget everything one project holds (the demo starts its own project afresh)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for table in ("events", "persons", "person_distinct_ids", "groups", "event_groups", "property_changes"):
                    self._db.execute("DELETE FROM %s WHERE project = ?" % table, (project,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def projects(self) -> List[Dict[str, Any]]:
        """Every project with data, with the redacted key it was sent with and its counts."""
        rows = self.query(
            "SELECT ids.project, pr.key_hint,"
            " (SELECT count(*) FROM events e WHERE e.project = ids.project) AS events,"
            " (SELECT count(*) FROM persons p WHERE p.project = ids.project) AS persons,"
            " (SELECT count(*) FROM groups g WHERE g.project = ids.project) AS groups,"
            " (SELECT max(received_at) FROM events e WHERE e.project = ids.project) AS last_received"
            " FROM (SELECT project FROM events UNION SELECT project FROM persons UNION SELECT project FROM groups) ids"
            " LEFT JOIN projects pr ON pr.project = ids.project ORDER BY last_received"
        )
        return [
            {
                "project": row["project"],
                "key": row["key_hint"],
                "events": row["events"],
                "persons": row["persons"],
                "groups": row["groups"],
                "last_received": row["last_received"],
            }
            for row in rows
        ]

    def persons(self, project: Optional[str] = None) -> List[Dict[str, Any]]:
        where, args = _in_project("p", project)
        rows = self.query(
            "SELECT p.*, (SELECT group_concat(distinct_id, char(31)) FROM person_distinct_ids d WHERE d.person_id = p.id)"
            " AS ids, (SELECT count(*) FROM events e WHERE e.person_id = p.id) AS events,"
            " (SELECT max(timestamp) FROM events e WHERE e.person_id = p.id) AS last_seen"
            " FROM persons p %s ORDER BY p.id" % where,
            args,
        )
        return [_person(row) for row in rows]

    def persons_with_id(self, distinct_id: str, project: Optional[str] = None) -> List[Dict[str, Any]]:
        """The person ``distinct_id`` belongs to in each project (one at most per project)."""
        where, args = _in_project("d", project)
        rows = self.query(
            "SELECT d.person_id FROM person_distinct_ids d %s %s d.distinct_id = ?"
            % (where, "AND" if where else "WHERE"),
            [*args, distinct_id],
        )
        wanted = {row[0] for row in rows}
        found = [p for p in self.persons(project) if p["id"] in wanted]
        for person in found:
            person["recent_events"] = self.events(person_id=person["id"], limit=20)
        return found

    def person(self, distinct_id: str, project: Optional[str] = None) -> Optional[Dict[str, Any]]:
        """The person a distinct id belongs to, with its recent events; None if none.

        Without ``project``, the id must be known in one project only (``ValueError``
        naming the projects otherwise): persons of different projects are different people.
        """
        found = self.persons_with_id(distinct_id, project)
        if len(found) > 1:
            raise ValueError(
                "the distinct id %r is in %d projects (%s)"
                % (distinct_id, len(found), ", ".join(p["project"] for p in found))
            )
        return found[0] if found else None

    def groups(self, project: Optional[str] = None) -> List[Dict[str, Any]]:
        where, args = _in_project("g", project)
        rows = self.query(
            "SELECT g.*, (SELECT count(*) FROM event_groups eg WHERE eg.project = g.project AND"
            " eg.group_type = g.group_type AND eg.group_key = g.group_key) AS events"
            " FROM groups g %s ORDER BY g.group_type, g.group_key, g.project" % where,
            args,
        )
        return [
            {
                "project": row["project"],
                "type": row["group_type"],
                "key": row["group_key"],
                "properties": json.loads(row["properties"]),
                "events": row["events"],
                "created_at": row["created_at"],
                "updated_at": row["updated_at"],
            }
            for row in rows
        ]

    def group(self, group_type: str, group_key: str, project: Optional[str] = None) -> Optional[Dict[str, Any]]:
        found = [g for g in self.groups(project) if (g["type"], g["key"]) == (group_type, group_key)]
        if len(found) > 1:
            raise ValueError("the group %s %r is in %d projects" % (group_type, group_key, len(found)))
        return found[0] if found else None

    def events(
        self,
        *,
        project: Optional[str] = None,
        after_seq: int = 0,
        limit: Optional[int] = None,
        person_id: Optional[int] = None,
        distinct_id: Optional[str] = None,
        event: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        """Events in arrival order; with ``limit``, the most recent ``limit`` of them."""
        where: List[str] = ["seq > ?"]
        args: List[Any] = [after_seq]
        for column, value in (
            ("project", project),
            ("person_id", person_id),
            ("distinct_id", distinct_id),
            ("event", event),
        ):
            if value is not None:
                where.append("%s = ?" % column)
                args.append(value)
        sql = "SELECT * FROM events WHERE %s ORDER BY seq DESC" % " AND ".join(where)
        if limit is not None:
            sql += " LIMIT %d" % int(limit)
        rows = self.query(sql, args)
        return [event_record(row) for row in reversed(rows)]

    def event(self, event_uuid: str, project: Optional[str] = None) -> Optional[Dict[str, Any]]:
        """The event with this uuid (in ``project``), or None."""
        where, args = _in_project("e", project)
        sql = "SELECT * FROM events e %s %s e.uuid = ?" % (where, "AND" if where else "WHERE")
        rows = self.query(sql, [*args, event_uuid])
        return event_record(rows[0]) if rows else None

    def counters(self) -> Dict[str, int]:
        return {row["name"]: row["value"] for row in self.query("SELECT * FROM counters")}


def _in_project(alias: str, project: Optional[str]) -> Tuple[str, List[Any]]:
    return ("WHERE %s.project = ?" % alias, [project]) if project is not None else ("", [])


def _person(row: sqlite3.Row) -> Dict[str, Any]:
    return {
        "project": row["project"],
        "id": row["id"],
        "distinct_ids": sorted((row["ids"] or "").split(chr(31))) if row["ids"] else [],
        "properties": json.loads(row["properties"]),
        "is_identified": bool(row["is_identified"]),
        "created_at": row["created_at"],
        "events": row["events"],
        "last_seen": row["last_seen"],
    }


def event_record(row: sqlite3.Row) -> Dict[str, Any]:
    return {
        "project": row["project"],
        "seq": row["seq"],
        "uuid": row["uuid"],
        "event": row["event"],
        "distinct_id": row["distinct_id"],
        "person_id": row["person_id"],
        "timestamp": row["timestamp"],
        "properties": json.loads(row["properties"]),
    }


def _stored_properties(event: Dict[str, Any], properties: Dict[str, Any]) -> Dict[str, Any]:
    """Event properties as PostHog shows them: top-level ``$set``/``$set_once`` folded in."""
    stored = dict(properties)
    for key in ("$set", "$set_once"):
        if isinstance(event.get(key), dict):
            stored[key] = {**_as_dict(stored.get(key)), **event[key]}
    return stored


def _as_dict(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


def _normal_timestamp(value: Any, default: str) -> str:
    if not value:
        return default
    parsed = parse_timestamp(str(value))
    return parsed.astimezone(_dt.timezone.utc).isoformat() if parsed else default


def parse_timestamp(text: str) -> Optional[_dt.datetime]:
    """An ISO-8601 timestamp (``Z`` accepted); naive ones are taken as UTC; None if invalid."""
    try:
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=_dt.timezone.utc)
