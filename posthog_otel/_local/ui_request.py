"""A page request and its answer, as the web pages (``ui_pages``, ``ui_events``, ``ui_flags``,
``ui_exceptions``) receive and give them; ``ui`` routes requests to those pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .flags import LocalFlags
from .store import Store
from .ui_markup import Html, fill, href, link, page


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: Dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    """One page request: the path's segments (decoded), its query, and the project chosen."""

    store: Store
    flags: LocalFlags
    segments: List[str]
    params: Dict[str, str]
    project: Optional[str]
    projects: List[Dict[str, Any]]
    #: This server as the browser reached it (``http://127.0.0.1:8010``).
    origin: str = "http://127.0.0.1"

    def url(self, *segments: Any, **query: Any) -> str:
        """A link to another page of the same project."""
        return href(*segments, **query, project=self.project)

    def project_field(self) -> Html:
        """The project, carried by a GET form."""
        if self.project is None:
            return Html("")
        return fill('<input type="hidden" name="project" value="%s">', self.project)

    def page(self, title: str, body: Html, current: str = "", status: int = 200) -> Response:
        nav = [
            ("Persons", self.url("persons")),
            ("Groups", self.url("groups")),
            ("Events", self.url("events")),
            ("Exceptions", self.url("exceptions")),
            ("Feature flags", self.url("feature_flags")),
        ]
        html = page(title, body, [("Overview", self.url())] + nav, current or title, self._context())
        return Response(status, html.encode("utf-8", "backslashreplace"))  # a lone surrogate as its escape

    def _context(self) -> Html:
        if self.project is None:
            return Html("")
        known = {p["project"]: p for p in self.projects}
        hint = known[self.project]["key"] if self.project in known else "nothing stored yet"
        more = fill(" · %s", link(href("projects"), "all projects")) if len(self.projects) > 1 else Html("")
        return fill('<p class="project">project <code>%s</code> (key %s)%s</p>', self.project, hint, more)

    def not_found(self, what: str) -> Response:
        return self.page("Not found", fill('<p class="empty">%s</p>', what), status=404)
