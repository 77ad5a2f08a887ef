"""The overview, persons and groups pages: lists, and one person or group with where each of
its properties came from."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

from . import views
from .render import summary
from .ui_events import event_table
from .ui_markup import Html, esc, fill, href, join, link, moment, section, table, value
from .ui_request import Request, Response

#: Events shown on a person's or group's page (the events page filters the rest).
TIMELINE = 200
#: Persons listed at most (the search narrows them).
LISTED = 500
#: A property's latest changes shown (how many earlier ones there are is said).
CHANGES_SHOWN = 25


def overview(request: Request) -> Response:
    project = request.project
    if project is None and len(request.projects) > 1:
        return projects(request)
    known = {p["project"]: p for p in request.projects}
    counts = known.get(project or "", {"persons": 0, "groups": 0, "events": 0})
    facts = _facts([
        ("Persons", link(request.url("persons"), counts["persons"])),
        ("Groups", link(request.url("groups"), counts["groups"])),
        ("Events", link(request.url("events"), counts["events"])),
    ])  # fmt: skip
    recent = request.store.events(project=project, limit=10) if project else []
    hint = fill(
        '<p class="muted">Send events here: <code>POSTHOG_HOST=%s POSTHOG_API_KEY=phc_anything python app.py</code>,'
        " or run <code>posthog-otel demo</code>.</p>",
        request.origin,
    )
    body = join([facts, section("Recent events", event_table(request, list(reversed(recent)))), hint])
    return request.page("Overview", body)


def projects(request: Request) -> Response:
    rows = [
        (link(href(project=p["project"]), p["project"]), p["key"] or "-", p["persons"], p["groups"], p["events"],
         moment(p["last_received"]))
        for p in request.projects
    ]  # fmt: skip
    body = table(("project", "key", "persons", "groups", "events", "last received"), rows,
                 empty="Nothing stored yet: point an application at this server, or run posthog-otel demo.")  # fmt: skip
    return request.page("Projects", body)


def persons(request: Request) -> Response:
    text = request.params.get("q", "")
    found = views.search_persons(request.store, request.project, text) if request.project else []
    shown = found[:LISTED]
    rows = [
        (join((link(request.url("person", d), d) for d in p["distinct_ids"]), Html("<br>")),
         value(summary(p["properties"]), limit=300), p["events"], moment(p["last_seen"]))
        for p in shown
    ]  # fmt: skip
    form = fill(
        '<form class="filters" method="get" action="/persons">%s<label>distinct id or property'
        '<input type="search" name="q" value="%s" autofocus></label><button type="submit">Search</button></form>',
        request.project_field(),
        text,
    )
    listing = table(("distinct ids", "properties", "events", "last seen"), rows, css="persons",
                    empty="No person matches." if text else "No persons yet.")  # fmt: skip
    count = fill(
        '<p class="muted">%s found%s</p>', len(found), ", the first %d shown" % LISTED if len(found) > LISTED else ""
    )
    return request.page("Persons", join([form, count, listing]))


def person(request: Request) -> Response:
    distinct_id = request.segments[1]
    try:
        found = request.store.person(distinct_id, request.project) if request.project else None
    except ValueError:
        found = None
    if found is None:
        return request.not_found("No person has the distinct id %r in this project." % distinct_id)
    store = request.store
    events = store.events(person_id=found["id"], limit=TIMELINE)
    groups = views.person_groups(store, found["id"])
    facts = _facts([
        ("Person", fill("%s %s", found["id"], _identified(found["is_identified"]))),
        ("Created", moment(found["created_at"])),
        ("Last seen", moment(found["last_seen"])),
        ("Events", found["events"]),
    ])  # fmt: skip
    ids = fill('<ul class="ids">%s</ul>', join(
        fill("<li>%s%s</li>", link(request.url("person", d), d), Html(" <span class=\"badge\">this page</span>")
             if d == distinct_id else Html(""))
        for d in found["distinct_ids"]
    ))  # fmt: skip
    merged = esc(" merged by alias or identify") if len(found["distinct_ids"]) > 1 else Html("")
    body = join([
        facts,
        section(fill("Distinct ids%s", merged), ids, len(found["distinct_ids"])),
        section("Properties", property_table(request, found["properties"], views.person_history(store, found["id"])),
                len(found["properties"])),
        section("Groups", _group_list(request, groups), len(groups)),
        section("Events", _timeline(request, events, found["events"]), found["events"]),
    ])  # fmt: skip
    return request.page(distinct_id, body, current="Persons")


def groups(request: Request) -> Response:
    found = request.store.groups(request.project) if request.project else []
    rows = [
        (g["type"], link(request.url("groups", g["type"], g["key"]), g["key"]), value(summary(g["properties"]), limit=300),
         g["events"], moment(g["updated_at"]))
        for g in found
    ]  # fmt: skip
    listing = table(("type", "key", "properties", "events", "updated"), rows, empty="No groups yet.")
    return request.page("Groups", listing)


def group(request: Request) -> Response:
    _, group_type, group_key = request.segments
    project = request.project
    found = request.store.group(group_type, group_key, project) if project else None
    if found is None or project is None:
        return request.not_found("No group %s %r in this project." % (group_type, group_key))
    store = request.store
    members = views.group_members(store, project, group_type, group_key)
    member_rows = [
        (link(request.url("person", m["distinct_id"]), m["distinct_id"]) if m["person_id"] else m["distinct_id"],
         m["person_id"] or "personless", m["events"], moment(m["last_seen"]))
        for m in members
    ]  # fmt: skip
    events = views.group_events(store, project, group_type, group_key, TIMELINE)
    facts = _facts([("Type", group_type), ("Key", group_key), ("Created", moment(found["created_at"])),
                    ("Updated", moment(found["updated_at"]))])  # fmt: skip
    body = join([
        facts,
        section("Properties", property_table(request, found["properties"],
                                             views.group_history(store, project, group_type, group_key)),
                len(found["properties"])),
        section("Members seen in its events", table(("distinct id", "person", "events", "last seen"), member_rows,
                                                    empty="No event was sent with this group yet."), len(members)),
        section("Events", _timeline(request, events, len(events)), len(events)),
    ])  # fmt: skip
    return request.page("%s %s" % (group_type, group_key), body, current="Groups")


# --- properties and where they came from ----------------------------------------------------------


def property_table(request: Request, current: Dict[str, Any], history: Dict[str, List[Dict[str, Any]]]) -> Html:
    """Each property with its changes, oldest first; the change that made the current value
    is marked, and a ``$set_once`` that found the key already set is shown struck through."""
    keys = sorted(set(current) | set(history), key=lambda k: (k.startswith("$"), k))
    rows: List[Html] = []
    for key in keys:
        changes = history.get(key, [])
        decisive = max((i for i, c in enumerate(changes) if c["applied"]), default=None) if key in current else None
        if not changes:
            rows.append(_change_row(key, {"value": current[key]}, "current", request, first=True))
            continue
        hidden = max(0, len(changes) - CHANGES_SHOWN)
        if hidden:
            rows.append(fill('<tr class="first"><td><code>%s</code></td><td colspan="6" class="muted">%s earlier '
                             "change(s) not shown</td></tr>", key, hidden))  # fmt: skip
        for index in range(hidden, len(changes)):
            first = index == hidden and not hidden
            rows.append(_change_row(key if first else "", changes[index], _outcome(changes[index], index == decisive),
                                    request, first=first))  # fmt: skip
    if not rows:
        return fill('<p class="empty">%s</p>', "No properties.")
    head = join(fill("<th>%s</th>", h) for h in ("property", "value", "operation", "outcome", "event time", "event",
                                                  "sent by"))  # fmt: skip
    return fill('<table class="properties"><thead><tr>%s</tr></thead><tbody>%s</tbody></table>', head, join(rows))


def _outcome(change: Dict[str, Any], decisive: bool) -> str:
    if decisive:
        return "current"
    if not change["applied"]:
        return "ignored" if change["operation"] != "$unset" else "nothing to remove"
    return "removed" if change["operation"] == "$unset" else "replaced"


_OUTCOMES = {
    "current": ("current", "badge good", "current value"),
    "ignored": ("ignored", "badge warn", "not applied: already set"),
    "replaced": ("", "badge", "replaced later"),
    "removed": ("", "badge", "removed"),
    "nothing to remove": ("ignored", "badge", "nothing to remove"),
}


def _change_row(key: str, change: Dict[str, Any], outcome: str, request: Request, first: bool) -> Html:
    css, badge, label = _OUTCOMES[outcome]
    css = " ".join(c for c in (css, "first" if first else "") if c)
    operation = change.get("operation")
    if operation == "merge":
        shown_operation = fill('merge <span class="muted">(%s: this person\'s value kept)</span>', change["event"])
    else:
        shown_operation = fill("<code>%s</code>", operation) if operation else Html("-")
    shown_value = Html('<span class="muted">(removed)</span>') if operation == "$unset" else value(change["value"])
    uuid = change.get("uuid")
    cells = [
        fill("<code>%s</code>", key) if key else Html(""),
        fill('<span class="value">%s</span>', shown_value),
        shown_operation,
        fill('<span class="%s">%s</span>', badge, label) if operation else esc("(stored before history was kept)"),
        moment(change.get("timestamp")),
        fill("%s<br>%s", change["event"], link(request.url("events", uuid), uuid, "id")) if uuid else Html("-"),
        link(request.url("person", change["distinct_id"]), change["distinct_id"]) if change.get("distinct_id") else "-",
    ]
    return fill('<tr class="%s">%s</tr>', css, join(fill("<td>%s</td>", c) for c in cells))


# --- small parts -----------------------------------------------------------------------------------


def _facts(pairs: Sequence[Tuple[Any, Any]]) -> Html:
    return fill('<dl class="facts">%s</dl>', join(fill("<dt>%s</dt><dd>%s</dd>", k, v) for k, v in pairs))


def _identified(identified: bool) -> Html:
    if identified:
        return Html('<span class="badge good">identified</span>')
    return Html('<span class="badge">anonymous</span>')


def _group_list(request: Request, found: List[Any]) -> Html:
    if not found:
        return Html('<p class="empty">No event of this person was sent with a group.</p>')
    items = []
    for group_type, group_key in found:
        group_record = request.store.group(group_type, group_key, request.project)
        name = (group_record or {}).get("properties", {}).get("name")
        items.append(fill("<li>%s: %s%s</li>", group_type, link(request.url("groups", group_type, group_key), group_key),
                          fill(" <span class=\"muted\">%s</span>", value(name)) if name is not None else Html("")))  # fmt: skip
    return fill('<ul class="ids">%s</ul>', join(items))


def _timeline(request: Request, events: List[Dict[str, Any]], total: int) -> Html:
    note = Html("")
    if total > len(events):
        note = fill('<p class="muted">The latest %s of %s; %s filters them all.</p>', len(events), total,
                    link(request.url("events"), "Events"))  # fmt: skip
    return join([note, event_table(request, list(reversed(events)))])
