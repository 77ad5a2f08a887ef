"""Exceptions: PostHog's ``$exception`` events, grouped into issues by type and top frame.

An ``$exception`` event carries ``$exception_list``: the exception raised first, then
those it was chained from, each ``{type, value, mechanism, stacktrace: {frames: [...]}}``
with frames oldest call first (so the top frame, where it was raised, is the last; the
last ``in_app`` frame when any frame says so).  An issue is one (type, top frame's file
and function); an event's own ``$exception_fingerprint`` wins, as it does in PostHog.
Older SDKs' ``$exception_type`` and ``$exception_message`` are read when there is no
list.  The properties are whatever the sender sent: anything of the wrong shape is shown
as unknown, never trusted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Set

from .ui_markup import Html, esc, fill, join, link, moment, section, table, value
from .ui_request import Request, Response

#: The latest ``$exception`` events read to build the issues.
SCANNED = 5000


@dataclass
class Issue:
    fingerprint: str
    type: str
    frame: Dict[str, Any]
    events: List[Dict[str, Any]] = field(default_factory=list)  # newest first
    distinct_ids: Set[str] = field(default_factory=set)


def exceptions_of(properties: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The chain, raised exception first, each with a ``type``, ``value`` and ``frames`` list."""
    chain = properties.get("$exception_list")
    found = []
    for entry in chain if isinstance(chain, list) else []:
        if isinstance(entry, dict):
            stack = entry.get("stacktrace")
            frames = stack.get("frames") if isinstance(stack, dict) else None
            found.append(
                {**entry, "frames": [f for f in frames if isinstance(f, dict)] if isinstance(frames, list) else []}
            )
    if not found and ("$exception_type" in properties or "$exception_message" in properties):
        found.append(
            {"type": properties.get("$exception_type"), "value": properties.get("$exception_message"), "frames": []}
        )
    return found


def top_frame(frames: List[Dict[str, Any]]) -> Dict[str, Any]:
    in_app = [f for f in frames if f.get("in_app") is True]
    return (in_app or frames or [{}])[-1]


def issue_of(properties: Dict[str, Any]) -> Issue:
    chain = exceptions_of(properties)
    first = chain[0] if chain else {"type": None, "frames": []}
    kind = _text(first.get("type")) or "unknown exception"
    frame = top_frame(first["frames"])
    given = properties.get("$exception_fingerprint")
    basis = given if isinstance(given, str) and given else "\x1f".join(
        (kind, _text(frame.get("filename")), _text(frame.get("function")))
    )  # fmt: skip
    return Issue(hashlib.sha256(basis.encode("utf-8", "replace")).hexdigest()[:16], kind, frame)


def group_issues(events: List[Dict[str, Any]]) -> List[Issue]:
    """Issues, the most recently seen first; ``events`` newest first."""
    issues: Dict[str, Issue] = {}
    for event in events:
        found = issue_of(event["properties"])
        issue = issues.setdefault(found.fingerprint, found)
        issue.events.append(event)
        issue.distinct_ids.add(event["distinct_id"])
    return list(issues.values())


def issues(request: Request) -> Response:
    found = group_issues(_latest(request))
    rows = [
        (link(request.url("exceptions", i.fingerprint), i.type), value(_message(i.events[0]), limit=200),
         _frame_text(i.frame), len(i.events), len(i.distinct_ids), moment(i.events[0]["timestamp"]),
         moment(i.events[-1]["timestamp"]))
        for i in found
    ]  # fmt: skip
    listing = table(("type", "latest message", "top frame", "events", "distinct ids", "last seen", "first seen"), rows,
                    empty="No $exception events yet: capture_exception sends them.")  # fmt: skip
    return request.page("Exceptions", listing)


def issue(request: Request) -> Response:
    fingerprint = request.segments[1]
    found = next((i for i in group_issues(_latest(request)) if i.fingerprint == fingerprint), None)
    if found is None:
        return request.not_found("No exception issue %r in this project." % fingerprint)
    latest = found.events[0]
    chain = exceptions_of(latest["properties"])
    occurrences = [
        (moment(e["timestamp"]), link(request.url("events", e["uuid"]), e["uuid"]),
         link(request.url("person", e["distinct_id"]), e["distinct_id"]) if e["person_id"] else e["distinct_id"],
         value(_message(e), limit=200))
        for e in found.events
    ]  # fmt: skip
    body = join([
        fill('<p class="muted">Top frame: %s</p>', _frame_text(found.frame)),
        section("Latest stack trace", join(_exception(e, i) for i, e in enumerate(chain))),
        section("Events", table(("time", "event", "distinct id", "message"), occurrences), len(found.events)),
    ])  # fmt: skip
    return request.page(found.type, body, current="Exceptions")


def _latest(request: Request) -> List[Dict[str, Any]]:
    if request.project is None:
        return []
    return list(reversed(request.store.events(project=request.project, event="$exception", limit=SCANNED)))


def _exception(exception: Dict[str, Any], index: int) -> Html:
    mechanism = exception.get("mechanism")
    handled = mechanism.get("handled") if isinstance(mechanism, dict) else None
    badge = Html("")
    if handled is not None:
        badge = fill(
            ' <span class="badge%s">%s</span>', "" if handled else " warn", "handled" if handled else "unhandled"
        )
    frames = join(_frame(f) for f in exception["frames"])
    caused = esc("which was raised from: ") if index else Html("")
    return fill(
        "<h3>%s<code>%s</code>: %s%s</h3>%s",
        caused,
        _text(exception.get("type")) or "unknown",
        value(_text(exception.get("value"))),
        badge,
        fill('<ol class="frames">%s</ol><p class="muted">Most recent call last.</p>', frames) if frames else
        Html('<p class="empty">No stack trace.</p>'),
    )  # fmt: skip


def _frame(frame: Dict[str, Any]) -> Html:
    line = frame.get("context_line")
    return fill(
        '<li class="%s">%s%s</li>',
        "in-app" if frame.get("in_app") is True else "",
        _frame_text(frame),
        fill('<code class="line">%s</code>', _text(line).strip()) if line else Html(""),
    )


def _frame_text(frame: Dict[str, Any]) -> str:
    if not frame:
        return "no stack trace"
    where = _text(frame.get("filename") or frame.get("abs_path") or frame.get("module")) or "?"
    lineno = frame.get("lineno")
    return "%s in %s%s" % (
        _text(frame.get("function")) or "?",
        where,
        ":%s" % _text(lineno) if lineno is not None else "",
    )


def _message(event: Dict[str, Any]) -> str:
    chain = exceptions_of(event["properties"])
    return _text(chain[0].get("value")) if chain else ""


def _text(data: Any) -> str:
    """A value from the event as text: None as empty, anything else as sent."""
    return "" if data is None else str(data)
