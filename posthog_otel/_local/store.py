"""The local server's database: events, persons, groups, in SQLite.

``Store`` owns the connection; the work is in its parts: ``ingest`` (a batch of events,
with ``persons`` applying PostHog's person processing), ``reads`` (what the CLI and the
pages list), ``database`` (where the file is, its schema, opening it safely), ``history``
(each property's changes).  ``docs/local-server.md`` has the rules and where they
differ from PostHog.

One connection, one lock: requests are serialised, which is what SQLite does anyway,
and every batch is one transaction, so a batch is stored whole or not at all.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Any, Dict, List, Sequence

from .._config import redact
from .database import default_path, open_database
from .ingest import Batch, IngestResult
from .persons import now
from .reads import Reads


def project_of(api_key: str) -> str:
    """A stable, short name for the project a key belongs to; the key itself is never stored."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:12]


class Store(Reads):
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

    def ingest(self, api_key: str, events: Sequence[Dict[str, Any]]) -> IngestResult:
        """Store one validated batch and apply its person and group updates, atomically."""
        project = project_of(api_key)
        received = now()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO projects (project, key_hint, first_seen) VALUES (?, ?, ?)",
                    (project, redact(api_key), received),
                )
                batch = Batch(self._db, project, received)
                for event in events:
                    batch.add(event)
                batch.bump("duplicates", batch.result.duplicates)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return batch.result

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

    def query(self, sql: str, args: Sequence[Any] = ()) -> List[sqlite3.Row]:
        """Rows of one read (the web pages' own queries are in ``views``)."""
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()
