"""Where the local PostHog keeps its data, and opening it safely.

``open_database`` refuses, with a message that says what to do (``DatabaseError``), a
path that is a directory, a file that is not SQLite, a SQLite database of something
else (our tables are never added to another application's database), and a place it
cannot write; and it never creates anything when only reading.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from urllib.parse import quote

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    uuid TEXT NOT NULL,
    event TEXT NOT NULL,
    distinct_id TEXT NOT NULL,
    person_id INTEGER,
    timestamp TEXT NOT NULL,
    properties TEXT NOT NULL,
    received_at TEXT NOT NULL,
    UNIQUE (project, uuid)
);
CREATE INDEX IF NOT EXISTS events_by_person ON events (person_id);
CREATE INDEX IF NOT EXISTS events_by_distinct_id ON events (project, distinct_id);
CREATE TABLE IF NOT EXISTS persons (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    properties TEXT NOT NULL DEFAULT '{}',
    is_identified INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS person_distinct_ids (
    project TEXT NOT NULL,
    distinct_id TEXT NOT NULL,
    person_id INTEGER NOT NULL,
    PRIMARY KEY (project, distinct_id)
);
CREATE TABLE IF NOT EXISTS groups (
    project TEXT NOT NULL,
    group_type TEXT NOT NULL,
    group_key TEXT NOT NULL,
    properties TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (project, group_type, group_key)
);
CREATE TABLE IF NOT EXISTS event_groups (
    seq INTEGER NOT NULL,
    project TEXT NOT NULL,
    group_type TEXT NOT NULL,
    group_key TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS event_groups_by_group ON event_groups (project, group_type, group_key);
-- Every change to a person's or group's properties, in arrival order: what the UI shows as a
-- property's history. A person change has person_id; a group change, group_type and group_key.
-- key and value are JSON (a key may hold what UTF-8 cannot: a lone surrogate of a JSON escape);
-- value is NULL for $unset; applied is 0 for a $set_once on a key already set.
CREATE TABLE IF NOT EXISTS property_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    person_id INTEGER,
    group_type TEXT,
    group_key TEXT,
    key TEXT NOT NULL,
    value TEXT,
    operation TEXT NOT NULL,
    applied INTEGER NOT NULL,
    event TEXT NOT NULL,
    event_uuid TEXT NOT NULL,
    timestamp TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS property_changes_by_person ON property_changes (person_id);
CREATE INDEX IF NOT EXISTS property_changes_by_group ON property_changes (project, group_type, group_key);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS projects (
    project TEXT PRIMARY KEY,
    key_hint TEXT NOT NULL,
    first_seen TEXT NOT NULL
);
"""

#: Tables that make a database ours; a database holding other tables but not these is not.
OUR_TABLES = frozenset({"events", "persons", "person_distinct_ids", "groups"})

_WHAT_TO_DO = "point --db (or POSTHOG_OTEL_LOCAL_DB) at a posthog-otel database or a new file"


class DatabaseError(Exception):
    """The database cannot be used; the message says why and what to do."""


def default_path() -> Path:
    """``$POSTHOG_OTEL_LOCAL_DB``, else ``<user data dir>/posthog-otel/local.sqlite3``."""
    explicit = os.environ.get("POSTHOG_OTEL_LOCAL_DB")
    if explicit:
        return Path(explicit).expanduser()
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "posthog-otel" / "local.sqlite3"


def open_database(path: Path, create: bool) -> sqlite3.Connection:
    """A connection to the database at ``path``, created (private to the user) when
    ``create``; otherwise it must exist and nothing is written to it here."""
    try:
        if path.is_dir():
            raise DatabaseError("%s is a directory: %s" % (path, _WHAT_TO_DO))
        if not create and not path.exists():
            raise DatabaseError(
                "No local database at %s yet: run `posthog-otel server` or `posthog-otel demo` first" % path
            )
        if create:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                path.touch(mode=0o600)
        uri = "file:%s?mode=%s" % (quote(str(path.resolve())), "rwc" if create else "rw")
        db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30, isolation_level=None)
    except DatabaseError:
        raise
    except (OSError, sqlite3.Error) as error:
        raise DatabaseError(_explain(path, error)) from None
    try:
        _check_ours(db, path)
        if create:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            _check_writable(db)
        db.execute("PRAGMA busy_timeout=30000")
    except DatabaseError:
        db.close()
        raise
    except sqlite3.Error as error:
        db.close()
        raise DatabaseError(_explain(path, error)) from None
    db.row_factory = sqlite3.Row
    return db


def _check_ours(db: sqlite3.Connection, path: Path) -> None:
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    tables.discard("sqlite_sequence")
    if tables and not OUR_TABLES <= tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise DatabaseError("%s is the SQLite database of something else (tables: %s): %s" % (path, shown, _WHAT_TO_DO))


def _check_writable(db: sqlite3.Connection) -> None:
    """SQLite opens a file it may not write read-only, silently; a write says so now,
    rather than every request failing later."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DELETE FROM counters WHERE 0")
    finally:
        db.execute("ROLLBACK")


def _explain(path: Path, error: Exception) -> str:
    text = str(error)
    if "not a database" in text:
        return "%s is not a SQLite database: %s" % (path, _WHAT_TO_DO)
    denied = isinstance(error, PermissionError) or "readonly" in text or "read-only" in text
    if denied or ("unable to open" in text and not _writable_folder(path)):
        return (
            "cannot %s the database %s (permission denied): choose a writable place with --db or POSTHOG_OTEL_LOCAL_DB"
            % ("write" if path.exists() else "create", path)
        )
    return "cannot open the database %s (%s): %s" % (path, text, _WHAT_TO_DO)


def _writable_folder(path: Path) -> bool:
    folder = next((p for p in path.absolute().parents if p.exists()), Path(path.anchor))
    return os.access(folder, os.W_OK, effective_ids=os.access in os.supports_effective_ids)
