"""Text output for people: aligned tables, short timestamps, property summaries."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

MAX_CELL = 60


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], max_cell: int = MAX_CELL) -> str:
    """Columns padded to their widest cell; cells cut at ``max_cell`` with an ellipsis."""
    cells = [[_cut(str(c), max_cell) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def when(iso: Optional[str]) -> str:
    """``2024-01-15 10:30:00`` in UTC, or ``-``."""
    if not iso:
        return "-"
    try:
        moment = _dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(_dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def summary(properties: Dict[str, Any], skip_system: bool = True) -> str:
    """``email=user@example.com plan=premium`` (PostHog's own ``$`` keys left out)."""
    shown = [
        "%s=%s" % (key, _value(value)) for key, value in properties.items() if not (skip_system and key.startswith("$"))
    ]
    return " ".join(shown) if shown else "-"


def persons_table(persons: List[Dict[str, Any]], show_project: bool = False) -> str:
    rows = [
        (
            p["id"],
            ", ".join(p["distinct_ids"]),
            summary(p["properties"]),
            p["events"],
            when(p["last_seen"]),
        )
        for p in persons
    ]
    headers = ("person", "distinct ids", "properties", "events", "last seen")
    return _with_project(headers, rows, persons, show_project) + "\n" + _count(len(persons), "person")


def groups_table(groups: List[Dict[str, Any]], show_project: bool = False) -> str:
    rows = [(g["type"], g["key"], summary(g["properties"]), g["events"], when(g["updated_at"])) for g in groups]
    headers = ("type", "key", "properties", "events", "updated")
    return _with_project(headers, rows, groups, show_project) + "\n" + _count(len(groups), "group")


def events_table(events: List[Dict[str, Any]], header: bool = True, show_project: bool = False) -> str:
    rows = [
        (when(e["timestamp"]), e["event"], e["distinct_id"], e["person_id"] or "-", event_summary(e)) for e in events
    ]
    text = _with_project(("time", "event", "distinct id", "person", "properties"), rows, events, show_project)
    return text if header else "\n".join(text.splitlines()[1:])


def projects_table(projects: List[Dict[str, Any]]) -> str:
    rows = [
        (p["project"], p["key"] or "-", p["events"], p["persons"], p["groups"], when(p["last_received"]))
        for p in projects
    ]
    headers = ("project", "key", "events", "persons", "groups", "last received")
    return table(headers, rows) + "\n" + _count(len(projects), "project")


def _with_project(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], records: List[Dict[str, Any]], show_project: bool
) -> str:
    """The table, led by a PROJECT column when records of several projects are shown together."""
    if not show_project:
        return table(headers, rows)
    return table(("project", *headers), [(r["project"], *row) for r, row in zip(records, rows)])


def person_detail(person: Dict[str, Any]) -> str:
    lines = [
        "Person %s%s" % (person["id"], " (identified)" if person["is_identified"] else ""),
        "  project      %s" % person["project"],
        "  created      %s" % when(person["created_at"]),
        "  last seen    %s" % when(person["last_seen"]),
        "  events       %d" % person["events"],
        "",
        "Distinct ids (%d)" % len(person["distinct_ids"]),
    ]
    lines += ["  " + d for d in person["distinct_ids"]]
    lines += ["", "Properties (%d)" % len(person["properties"])]
    if person["properties"]:
        width = max(len(k) for k in person["properties"])
        lines += ["  %s  %s" % (k.ljust(width), _value(v)) for k, v in sorted(person["properties"].items())]
    recent = person.get("recent_events") or []
    lines += ["", "Recent events (%d of %d)" % (len(recent), person["events"])]
    if recent:
        lines += ["  " + line for line in events_table(recent).splitlines()]
    exceptions = [e for e in recent if e["event"] == "$exception"]
    if exceptions:
        lines += ["", "Recent exceptions (%d)" % len(exceptions)]
        for event in exceptions:
            error, where = exception_summary(event["properties"])
            lines += ["  %s  %s" % (when(event["timestamp"]), error)] + (["      at %s" % where] if where else [])
    return "\n".join(lines)


def exception_summary(properties: Dict[str, Any]) -> Tuple[str, str]:
    """(``ValueError: the message``, ``charge (shop/pay.py:45)``: where it was raised) of an
    ``$exception`` event; what can be told of it when its ``$exception_list`` is malformed."""
    entries = properties.get("$exception_list")
    first = entries[0] if isinstance(entries, list) and entries and isinstance(entries[0], dict) else {}
    kind = first.get("type") or "exception"
    value = str(first.get("value") or "").strip().splitlines()
    error = "%s: %s" % (kind, value[0]) if value else str(kind)
    stack = first.get("stacktrace")
    frames = stack.get("frames") if isinstance(stack, dict) else None
    top = frames[-1] if isinstance(frames, list) and frames and isinstance(frames[-1], dict) else None
    if top is None:
        return error, ""
    place = ":".join(str(part) for part in (top.get("filename") or top.get("abs_path"), top.get("lineno")) if part)
    return error, "%s (%s)" % (top.get("function") or "?", place) if place else str(top.get("function") or "?")


def event_summary(event: Dict[str, Any]) -> str:
    properties = event["properties"]
    parts = []
    for key in ("$set", "$set_once"):
        if isinstance(properties.get(key), dict):
            parts.append("%s{%s}" % (key, summary(properties[key], skip_system=False)))
    if event["event"] == "$groupidentify":
        parts.append(
            "%s:%s {%s}"
            % (properties.get("$group_type"), properties.get("$group_key"), summary(properties.get("$group_set") or {}))
        )
    if event["event"] == "$create_alias":
        parts.append("alias=%s" % properties.get("alias"))
    if event["event"] == "$exception":
        error, where = exception_summary(properties)
        parts.append(_cut(error, 40) + (" at " + where if where else ""))
    if event["event"] == "$feature_flag_called":
        parts.append("flag %s=%s" % (properties.get("$feature_flag"), _value(properties.get("$feature_flag_response"))))
    if isinstance(properties.get("$groups"), dict):
        parts.append("groups{%s}" % summary(properties["$groups"]))
    rest = summary(properties)
    if rest != "-" and event["event"] not in ("$create_alias",):
        parts.append(rest)
    return " ".join(parts) or "-"


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count(n: int, noun: str) -> str:
    return "%d %s%s" % (n, noun, "" if n == 1 else "s")
