"""Feature flags the server serves (``--flags FILE``): their list, and one flag explained for a
person, as ``posthog-otel flags explain`` prints it.

The form is a GET (nothing changes on the server, and it works without JavaScript); its
fields are the command's options, one per line.  The person's and groups' stored
properties of this project are used under the ones typed, as ``/flags`` does.
"""

from __future__ import annotations

import argparse
import io
from typing import Any, Dict, List

from .ui_markup import Html, fill, href, join, link, table
from .ui_request import Request, Response


def flags(request: Request) -> Response:
    from .._flags.cli import _row

    definitions = request.flags.definitions
    if not definitions.flags:
        return request.page("Feature flags", Html(
            '<p class="empty">This server serves no flags: start it with <code>posthog-otel server --flags flags.json'
            "</code> (PostHog's definitions, or e.g. <code>{\"new_dashboard\": true}</code>).</p>"
        ))  # fmt: skip
    rows = []
    for flag in definitions.flags:
        key, active, audience, conditions, variants = _row(flag, definitions)
        rows.append((link(request.url("feature_flags", key), key), active, audience, conditions, variants))
    listing = table(("flag", "active", "for", "conditions", "variants"), rows)
    return request.page(
        "Feature flags", join([listing, Html('<p class="muted">Open a flag to explain its answer.</p>')])
    )


def explain(request: Request) -> Response:
    from .._flags.cli import Failure, _request
    from .._flags.cli import explain as explain_flag

    key = request.segments[1]
    flag = request.flags.definitions.by_key.get(key)
    if flag is None:
        return request.not_found("This server serves no flag %r." % key)
    params = request.params
    answer = Html("")
    if params.get("distinct_id", "").strip():
        try:
            asked = _request(_arguments(params))
        except Failure as problem:
            answer = fill('<p class="badge warn">%s</p>', problem)
        else:
            if params.get("stored", "use") == "use":
                _add_stored(request, asked)
            out = io.StringIO()
            explain_flag(request.flags.definitions, flag, asked, out)
            answer = fill("<h2>Answer</h2><pre>%s</pre>", out.getvalue())
    return request.page(key, join([_form(request, key), answer]), current="Feature flags")


def _arguments(params: Dict[str, str]) -> argparse.Namespace:
    return argparse.Namespace(
        distinct_id=params["distinct_id"].strip(),
        prop=_lines(params.get("prop", "")),
        group=_lines(params.get("group", "")),
        group_prop=_lines(params.get("group_prop", "")),
        device_id=params.get("device_id", "").strip() or None,
    )


def _lines(text: str) -> List[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _add_stored(request: Request, asked: Dict[str, Any]) -> None:
    """The project's stored properties under the typed ones."""
    store, project = request.store, request.project
    if project is None:
        return
    person = store.person(asked["distinct_id"], project)
    if person is not None:
        asked["person_properties"] = {**person["properties"], **asked["person_properties"]}
    for group_type, group_key in asked["groups"].items():
        found = store.group(group_type, group_key, project)
        if found is not None:
            typed = asked["group_properties"].get(group_type, {})
            asked["group_properties"][group_type] = {**found["properties"], **typed}


def _form(request: Request, key: str) -> Html:
    params = request.params
    stored = params.get("stored", "use")
    return fill(
        '<form class="explain" method="get" action="%s">%s'
        '<label>distinct id<input name="distinct_id" value="%s" required></label>'
        '<label>person properties (NAME=VALUE per line)<textarea name="prop">%s</textarea></label>'
        '<label>groups (TYPE=KEY per line)<textarea name="group">%s</textarea></label>'
        '<label>group properties (TYPE.NAME=VALUE per line)<textarea name="group_prop">%s</textarea></label>'
        '<label>device id<input name="device_id" value="%s"></label>'
        '<label>stored properties<select name="stored"><option value="use"%s>used under these</option>'
        '<option value="ignore"%s>ignored</option></select></label>'
        '<button type="submit">Explain</button></form>',
        href("feature_flags", key),
        request.project_field(),
        params.get("distinct_id", ""),
        params.get("prop", ""),
        params.get("group", ""),
        params.get("group_prop", ""),
        params.get("device_id", ""),
        Html(" selected") if stored == "use" else Html(""),
        Html(" selected") if stored != "use" else Html(""),
    )
