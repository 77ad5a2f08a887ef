"""The store's reads for the CLI and the web pages: projects, persons, groups, events, counters."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Dict, List, Optional, Sequence, Tuple


class Reads:
    """Lists and look-ups over ``query``; ``project`` ``None`` reads every project."""

    def query(self, sql: str, args: Sequence[Any] = ()) -> List[sqlite3.Row]:
        raise NotImplementedError  # the store's, under its lock

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
