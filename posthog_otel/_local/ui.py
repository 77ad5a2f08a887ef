"""The local PostHog's web pages: which request is a page, the project it is about, the answer.

Pages are read-only and server-rendered (``ui_pages``, ``ui_events``, ``ui_flags``,
``ui_exceptions``); the only script is the events page's live tail. Every answer carries a
strict Content-Security-Policy (scripts and styles from this server only, no inline code,
no frames, forms only to here), so even a value that slipped past the escaping could not
run.  Pages answer only requests whose ``Host`` is a loopback name: a web page elsewhere
cannot read them by pointing its own domain at 127.0.0.1 (DNS rebinding).

A page is about one project, as the CLI's ``--key``: ``?project=`` (an id from
``/projects``, or an API key, which is answered with a redirect to its id so the key does
not stay in the address bar), else the only project in the database.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from . import ui_assets
from .flags import LocalFlags
from .store import Store, project_of
from .ui_markup import SURROGATES, esc, href, join, link, table
from .ui_request import Request, Response

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

#: The first path segments that are pages (they echo PostHog's own: /persons, /person/ID, ...).
SECTIONS = frozenset({"", "projects", "persons", "person", "groups", "events", "feature_flags", "exceptions", "static"})

_LOOPBACK_HOST = re.compile(r"(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?", re.IGNORECASE)
_PROJECT_ID = re.compile(r"[0-9a-f]{12}")


Page = Callable[[Request], Response]


def serves(path: str) -> bool:
    """Whether a GET of ``path`` is one of the pages (the rest stays the capture API's)."""
    first = urlsplit(path).path.lstrip("/").split("/", 1)[0]
    return first in SECTIONS


def handle(handler: Any, store: Store, flags: LocalFlags) -> int:
    """Answer a page request on an ``http.server`` handler; the status sent."""
    response = _answer(handler.path, handler.headers.get("Host"), store, flags)
    handler.send_response(response.status)
    for name, value in {**SECURITY_HEADERS, **response.headers}.items():
        handler.send_header(name, value)
    handler.send_header("Content-Type", response.content_type)
    handler.send_header("Content-Length", str(len(response.body)))
    handler.end_headers()
    handler.wfile.write(response.body)
    return response.status


def _answer(target: str, host: Optional[str], store: Store, flags: LocalFlags) -> Response:
    if host is not None and not _LOOPBACK_HOST.fullmatch(host.strip()):
        return Response(403, b"The local PostHog's pages answer only at 127.0.0.1 or localhost.\n", "text/plain")
    parts = urlsplit(target)
    segments = [unquote(s, errors=SURROGATES) for s in parts.path.lstrip("/").split("/")]
    if segments[-1] == "" and len(segments) > 1:
        segments.pop()  # /persons/ is /persons
    params = dict(parse_qsl(parts.query, keep_blank_values=True, errors=SURROGATES))
    if segments[0] == "static":
        return _static(segments)
    projects = store.projects()
    project, redirect = _choose_project(params.get("project"), projects)
    if redirect is not None:
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True, errors=SURROGATES) if k != "project"]
        location = href(*segments) if segments != [""] else "/"
        return _redirect(location, query + [("project", redirect)])
    origin = "http://%s" % (host.strip() if host else "127.0.0.1")
    request = Request(store, flags, segments, params, project, projects, origin)
    if project is None and len(projects) > 1 and segments[0] not in ("", "projects"):
        return _choose(request)
    return _route(request)


def _choose_project(given: Optional[str], projects: List[Dict[str, Any]]) -> Tuple[Optional[str], Optional[str]]:
    """(project, None), or (None, id) when ``given`` is a key to redirect to its id."""
    known = [p["project"] for p in projects]
    if given:
        if given in known or _PROJECT_ID.fullmatch(given):
            return given, None
        return None, project_of(given.strip())
    return (known[0] if len(known) == 1 else None), None


def _redirect(location: str, query: List[Tuple[str, str]]) -> Response:
    target = location + ("?" + urlencode(query, errors=SURROGATES) if query else "")
    return Response(303, b"", "text/plain", {"Location": target})


def _route(request: Request) -> Response:
    from . import ui_events, ui_exceptions, ui_flags, ui_pages

    routes: Dict[Tuple[str, int], Page] = {
        ("", 1): ui_pages.overview,
        ("projects", 1): ui_pages.projects,
        ("persons", 1): ui_pages.persons,
        ("person", 2): ui_pages.person,
        ("groups", 1): ui_pages.groups,
        ("groups", 3): ui_pages.group,
        ("events", 1): ui_events.events,
        ("events", 2): ui_events.event_or_feed,
        ("exceptions", 1): ui_exceptions.issues,
        ("exceptions", 2): ui_exceptions.issue,
        ("feature_flags", 1): ui_flags.flags,
        ("feature_flags", 2): ui_flags.explain,
    }
    route = routes.get((request.segments[0], len(request.segments)))
    if route is None:
        return request.not_found("There is no page at /%s." % "/".join(request.segments))
    return route(request)


def _choose(request: Request) -> Response:
    """Several projects and none chosen: the same page in each of them."""
    rows = [
        (link(href(*request.segments, **{**request.params, "project": p["project"]}), p["project"]), p["key"] or "-",
         p["persons"], p["events"])
        for p in request.projects
    ]  # fmt: skip
    body = join([
        esc("This database holds several projects (API keys); choose one."),
        table(("project", "key", "persons", "events"), rows),
    ])  # fmt: skip
    return request.page("Choose a project", body)


def _static(segments: List[str]) -> Response:
    name = "/".join(segments[1:])
    found = ui_assets.FILES.get(name)
    if found is None:
        return Response(404, b"no such file\n", "text/plain")
    content_type, text = found
    return Response(200, text.encode("utf-8"), content_type, {"Cache-Control": "no-cache"})
