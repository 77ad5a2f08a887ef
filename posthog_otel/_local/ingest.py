"""One batch of events into the store: the events, their persons, groups and counters.

Follows PostHog's ingestion pipeline (``docs/local-server.md`` says where this differs):

- every event with person processing creates a person for its distinct id if none exists,
  and applies its person properties (``persons``);
- ``$create_alias`` merges ``properties.alias`` into the person of the event's
  ``distinct_id``, ``$identify`` merges ``$anon_distinct_id`` into it (``Persons.merge``);
- ``$groupidentify`` merges ``$group_set`` into the group (shallow, last write wins) and
  applies no person properties;
- ``$process_person_profile: false`` events create and change no person;
- events are deduplicated on (project, uuid), as PostHog deduplicates on uuid.

``Batch`` works inside the transaction ``Store.ingest`` holds.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
import uuid as _uuid
from dataclasses import dataclass
from typing import Any, Dict, Optional

from . import history
from .history import Origin
from .persons import Persons, as_dict


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    merges_refused: int = 0


class Batch:
    """The writes of one batch of ``project``'s events, received at ``received``."""

    def __init__(self, db: sqlite3.Connection, project: str, received: str) -> None:
        self._db = db
        self._project = project
        self._received = received
        self._persons = Persons(db, project)
        self.result = IngestResult()

    def add(self, event: Dict[str, Any]) -> None:
        project, received, result = self._project, self._received, self.result
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
        if personful:
            person_id: Optional[int] = self._person(name, distinct_id, event, properties, origin)
        else:
            person_id = self._persons.find(distinct_id)
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
        groups = properties.get("$groups")
        if isinstance(groups, dict):
            self._db.executemany(
                "INSERT INTO event_groups (seq, project, group_type, group_key) VALUES (?, ?, ?, ?)",
                [(cursor.lastrowid, project, str(t), str(k)) for t, k in groups.items() if k is not None],
            )
        if name == "$groupidentify" and personful:
            self._upsert_group(properties, origin)

    def bump(self, name: str, n: int) -> None:
        if n:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
                (name, n, n),
            )

    def _person(
        self, name: str, distinct_id: str, event: Dict[str, Any], properties: Dict[str, Any], origin: Origin
    ) -> int:
        """The event's person after its merge, if it asks for one, and its property updates."""
        if name in ("$create_alias", "$merge_dangerously") and properties.get("alias") is not None:
            self._refused(
                self._persons.merge(str(properties["alias"]), distinct_id, origin, name == "$merge_dangerously")
            )
        elif name == "$identify" and properties.get("$anon_distinct_id") is not None:
            self._refused(self._persons.merge(str(properties["$anon_distinct_id"]), distinct_id, origin))
        person_id = self._persons.find_or_new(distinct_id)
        if name != "$groupidentify":
            self._persons.update(person_id, event, properties, origin)
        return person_id

    def _refused(self, counter: Optional[str]) -> None:
        if counter is not None:
            self.bump(counter, 1)
            self.result.merges_refused += 1

    def _upsert_group(self, properties: Dict[str, Any], origin: Origin) -> None:
        group_type, group_key = properties.get("$group_type"), properties.get("$group_key")
        if group_type is None or group_key is None:
            return
        key = (self._project, str(group_type), str(group_key))
        row = self._db.execute(
            "SELECT properties FROM groups WHERE project = ? AND group_type = ? AND group_key = ?", key
        ).fetchone()
        group_set = as_dict(properties.get("$group_set"))
        merged = {**(json.loads(row[0]) if row else {}), **group_set}
        changes = [(k, v, "$group_set", True) for k, v in group_set.items()]
        history.record_group(self._db, self._project, key[1], key[2], origin, changes)
        if row is None:
            self._db.execute(
                "INSERT INTO groups (project, group_type, group_key, properties, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (*key, json.dumps(merged), self._received, self._received),
            )
        else:
            self._db.execute(
                "UPDATE groups SET properties = ?, updated_at = ? WHERE project = ? AND group_type = ? AND group_key = ?",
                (json.dumps(merged), self._received, *key),
            )


def _stored_properties(event: Dict[str, Any], properties: Dict[str, Any]) -> Dict[str, Any]:
    """Event properties as PostHog shows them: top-level ``$set``/``$set_once`` folded in."""
    stored = dict(properties)
    for key in ("$set", "$set_once"):
        if isinstance(event.get(key), dict):
            stored[key] = {**as_dict(stored.get(key)), **event[key]}
    return stored


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
