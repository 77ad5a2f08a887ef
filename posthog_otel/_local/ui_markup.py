"""HTML for the web pages, escaped by construction.

Every value put into a page goes through ``esc`` unless it is already ``Html`` (markup this
module built): ``fill("<td>%s</td>", value)`` escapes ``value``, so a property value that
holds ``<script>`` is shown as text.  Templates are literals in our code, never data, and
attribute values are always double-quoted (``esc`` escapes both quote characters).  Links
are built by ``href`` from path segments and query parameters, percent-encoded, so they
always start with ``/``: no ``javascript:`` URL can come from data.
"""

from __future__ import annotations

import html
import json
from typing import Any, Iterable, Optional, Sequence, Tuple
from urllib.parse import quote, urlencode

from .render import when

#: Values longer than this are cut on the pages (the event's JSON page shows them whole).
MAX_VALUE = 2000
#: How links carry text UTF-8 cannot encode, both ways.
SURROGATES = "surrogatepass"


class Html(str):
    """Markup that is safe as it is."""

    __slots__ = ()


#: No markup: the default of optional parts.
NO_HTML = Html("")


def esc(value: Any) -> Html:
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))


def fill(template: str, *values: Any) -> Html:
    """``template`` (a literal) with each ``%s`` replaced by an escaped value."""
    return Html(template % tuple(esc(v) for v in values))


def join(parts: Iterable[Any], separator: str = "") -> Html:
    return Html(esc(separator).join(esc(p) for p in parts))


def href(*segments: Any, **query: Any) -> str:
    """``/a/b?x=1``: each segment percent-encoded whole (a ``/`` in an id stays in its segment);
    query parameters that are None or empty are left out. Lone surrogates (JSON allows them)
    are encoded as such, and ``ui`` decodes them back (``SURROGATES``)."""
    path = "/" + "/".join(quote(str(s), safe="", errors=SURROGATES) for s in segments)
    pairs = [(k, str(v)) for k, v in query.items() if v is not None and v != ""]
    return path + ("?" + urlencode(pairs, errors=SURROGATES) if pairs else "")


def link(url: str, text: Any, css: Optional[str] = None) -> Html:
    if css:
        return fill('<a class="%s" href="%s">%s</a>', css, url, text)
    return fill('<a href="%s">%s</a>', url, text)


def value(data: Any, limit: int = MAX_VALUE) -> Html:
    """A property value as text: strings as they are, anything else as JSON; cut at ``limit``."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    css = "str" if isinstance(data, str) else "json"
    if len(text) > limit:
        return fill('<span class="%s">%s</span><span class="cut"> … (%s more characters)</span>', css, text[:limit],
                    len(text) - limit)  # fmt: skip
    return fill('<span class="%s">%s</span>', css, text)


def moment(iso: Optional[str]) -> Html:
    """A timestamp in UTC, with the full ISO text as its machine-readable value."""
    if not iso:
        return Html("-")
    return fill('<time datetime="%s">%s</time>', iso, when(iso))


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], css: str = "", body_id: str = "", empty: str = ""
) -> Html:
    head = join(fill("<th>%s</th>", h) for h in headers)
    body = join(fill("<tr>%s</tr>", join(fill("<td>%s</td>", c) for c in row)) for row in rows)
    if not body and empty:
        return fill('<p class="empty">%s</p>', empty)
    return fill(
        '<table class="%s"><thead><tr>%s</tr></thead><tbody%s>%s</tbody></table>',
        css,
        head,
        fill(' id="%s"', body_id) if body_id else Html(""),
        body,
    )


def section(title: Any, body: Any, count: Optional[int] = None) -> Html:
    shown = fill("%s <small>(%s)</small>", title, count) if count is not None else esc(title)
    return fill("<section><h2>%s</h2>%s</section>", shown, body)


def page(title: str, body: Html, nav: Sequence[Tuple[Any, Any]], current: str, context: Html = NO_HTML) -> Html:
    """A whole page: the navigation (``(label, url)``, ``current`` marked), ``context`` under
    it (the project), then ``body``. Styles and the only script are files of this server."""
    links = join(
        fill('<a href="%s"%s>%s</a>', url, Html(' aria-current="page"') if label == current else Html(""), label)
        for label, url in nav
    )
    return fill(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>%s · local PostHog</title>"
        '<link rel="stylesheet" href="/static/ui.css"><script src="/static/ui.js" defer></script></head>'
        "<body><header><strong>local PostHog</strong><nav>%s</nav>%s</header><main><h1>%s</h1>%s</main></body></html>\n",
        title,
        links,
        context,
        title,
        body,
    )
