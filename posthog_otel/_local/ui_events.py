"""The events page (filters, and a live tail that needs the page's one script), one event's
full JSON, and the feed the tail reads."""

from __future__ import annotations

import json
from typing import Any, Dict, List

from . import views
from .render import event_summary
from .ui_markup import NO_HTML, Html, fill, join, link, moment, value
from .ui_request import Request, Response

#: Events on the events page when it opens; the live tail adds the newer ones on top.
SHOWN = 100
#: Events one poll of the tail brings at most (the newest of them, when more arrived).
FEED_LIMIT = 200

_HEADERS = ("time", "event", "distinct id", "person", "properties")


def event_rows(request: Request, events: List[Dict[str, Any]]) -> Html:
    """One ``<tr>`` per event, in the order given."""
    rows = []
    for event in events:
        distinct_id = event["distinct_id"]
        cells = [
            moment(event["timestamp"]),
            link(request.url("events", event["uuid"]), event["event"]),
            link(request.url("person", distinct_id), distinct_id) if event["person_id"] else distinct_id,
            event["person_id"] or fill('<span class="muted">%s</span>', "personless"),
            value(event_summary(event), limit=300),
        ]
        rows.append(fill("<tr>%s</tr>", join(fill("<td>%s</td>", c) for c in cells)))
    return join(rows)


def event_table(request: Request, events: List[Dict[str, Any]], tail: Html = NO_HTML) -> Html:
    """Events, newest first as given; ``tail`` is the tbody's attributes for the live tail."""
    if not events and not tail:
        return Html('<p class="empty">No events.</p>')
    head = join(fill("<th>%s</th>", h) for h in _HEADERS)
    return fill('<table class="events"><thead><tr>%s</tr></thead><tbody%s>%s</tbody></table>', head, tail,
                event_rows(request, events))  # fmt: skip


def events(request: Request) -> Response:
    project = request.project
    filters = _filters(request)
    found = request.store.events(project=project, limit=SHOWN, **filters) if project else []
    last = found[-1]["seq"] if found else _last_seq(request)
    feed = request.url("events", "feed", **filters)
    tail = fill(' id="tail" data-feed="%s" data-after="%s"', feed, last)
    names = views.event_names(request.store, project) if project else []
    form = fill(
        '<form class="filters" method="get" action="/events">%s'
        '<label>event<input name="event" list="event-names" value="%s"></label><datalist id="event-names">%s</datalist>'
        '<label>distinct id<input name="distinct_id" value="%s"></label><button type="submit">Filter</button>%s</form>',
        request.project_field(),
        filters["event"] or "",
        join(fill('<option value="%s">', n) for n in names),
        filters["distinct_id"] or "",
        link(request.url("events"), "clear") if any(filters.values()) else Html(""),
    )
    status = Html('<p id="tail-status">New events appear here with JavaScript on; without it, reload the page.</p>')
    empty = (
        Html("")
        if found
        else Html('<p id="tail-empty" class="empty">No events yet: they appear here as they arrive.</p>')
    )
    table = event_table(request, list(reversed(found)), tail)
    return request.page("Events", join([form, status, empty, table]))


def event_or_feed(request: Request) -> Response:
    if request.segments[1] == "feed":
        return _feed(request)
    uuid = request.segments[1]
    found = request.store.event(uuid, request.project) if request.project else None
    if found is None:
        return request.not_found("No event has the uuid %r in this project." % uuid)
    properties = found["properties"]
    facts = [
        ("Event", found["event"]),
        ("Distinct id", link(request.url("person", found["distinct_id"]), found["distinct_id"])
         if found["person_id"] else found["distinct_id"]),
        ("Person", found["person_id"] or "personless"),
        ("Time", moment(found["timestamp"])),
        ("uuid", fill("<code>%s</code>", found["uuid"])),
    ]  # fmt: skip
    groups = properties.get("$groups")
    if isinstance(groups, dict):
        facts.append(("Groups", join((link(request.url("groups", t, k), "%s %s" % (t, k)) for t, k in groups.items()
                                      if k is not None), Html(", "))))  # fmt: skip
    if found["event"] == "$exception":
        from .ui_exceptions import issue_of

        facts.append(("Issue", link(request.url("exceptions", issue_of(properties).fingerprint), "all like it")))
    body = join([
        fill('<dl class="facts">%s</dl>', join(fill("<dt>%s</dt><dd>%s</dd>", k, v) for k, v in facts)),
        fill("<h2>JSON</h2><pre>%s</pre>", json.dumps(found, indent=2, ensure_ascii=False)),
    ])  # fmt: skip
    return request.page(found["event"], body, current="Events")


def _feed(request: Request) -> Response:
    """``{"after": seq, "rows": "<tr>..."}``: the events after ``after``, newest first, as rows."""
    try:
        after = min(max(0, int(request.params.get("after", "0"))), 2**63 - 1)  # SQLite's largest integer
    except ValueError:
        after = 0
    filters = _filters(request)
    new = request.store.events(project=request.project, after_seq=after, limit=FEED_LIMIT, **filters)
    if request.project is None:
        new = []
    body = {"after": new[-1]["seq"] if new else after, "rows": event_rows(request, list(reversed(new)))}
    return Response(200, json.dumps(body).encode("utf-8"), "application/json")


def _filters(request: Request) -> Dict[str, Any]:
    return {"event": request.params.get("event") or None, "distinct_id": request.params.get("distinct_id") or None}


def _last_seq(request: Request) -> int:
    latest = request.store.events(limit=1)
    return int(latest[-1]["seq"]) if latest else 0
