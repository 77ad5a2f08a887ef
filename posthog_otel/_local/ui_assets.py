"""The pages' stylesheet and their one script, served from ``/static/`` (the Content-Security-Policy
allows no inline style or script, and nothing is fetched from elsewhere)."""

from __future__ import annotations

from typing import Dict, Tuple

CSS = """
:root { --fg: #1d1f27; --muted: #5f6368; --line: #e3e4e8; --accent: #1d4aff; --soft: #f4f5f8; --warn: #a15c00; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); }
header { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: baseline; padding: .7em 1.5em;
  border-bottom: 1px solid var(--line); background: var(--soft); }
header nav { display: flex; gap: 1em; flex-wrap: wrap; }
header nav a { color: var(--fg); text-decoration: none; }
header nav a[aria-current="page"] { color: var(--accent); font-weight: 600; }
header .project { margin: 0 0 0 auto; color: var(--muted); }
main { padding: .5em 1.5em 3em; max-width: 1300px; }
h1 { font-size: 1.5em; margin: .6em 0 .3em; word-break: break-all; }
h2 { font-size: 1.1em; margin: 1.6em 0 .4em; }
h2 small, .muted { color: var(--muted); font-weight: normal; }
a { color: var(--accent); }
code, pre, .json, td.id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
pre { background: var(--soft); padding: 1em; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .35em .6em; border-bottom: 1px solid var(--line); }
th { font-size: 12px; text-transform: uppercase; color: var(--muted); font-weight: 600; }
td { word-break: break-word; }
tr.current td { background: #eef7ee; }
tr.ignored td { color: var(--muted); }
tr.ignored .value { text-decoration: line-through; }
tr.first td { border-top: 2px solid var(--line); }
.badge { display: inline-block; padding: 0 .5em; border-radius: 1em; font-size: 12px; background: var(--soft);
  border: 1px solid var(--line); color: var(--muted); white-space: nowrap; }
.badge.good { background: #eef7ee; border-color: #b9dcb9; color: #1e6b1e; }
.badge.warn { background: #fff4e0; border-color: #f0d199; color: var(--warn); }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1.2em; margin: .5em 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
.ids { list-style: none; padding: 0; margin: 0; }
.ids li { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.empty { color: var(--muted); }
.cut { color: var(--muted); }
form.filters, form.explain { display: flex; flex-wrap: wrap; gap: .8em; align-items: end; margin: .5em 0 1em; }
form label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: .2em; }
input, textarea, select, button { font: inherit; padding: .3em .5em; }
textarea { min-width: 18em; min-height: 4.5em; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
#tail-status { color: var(--muted); }
#tail tr.new td { background: #fffbe0; }
.frames li { margin: .3em 0; }
.frames li.in-app { font-weight: 600; }
.frames code.line { display: block; margin-left: 2em; color: var(--muted); white-space: pre-wrap; }
"""

#: The events page's live tail: every second, ask for the events after the last one shown
#: (same filters) and put the rows the server rendered, escaped, on top.
JS = """
(function () {
  "use strict";
  var body = document.getElementById("tail");
  var status = document.getElementById("tail-status");
  if (!body || !body.dataset.feed) { return; }
  var after = body.dataset.after;
  var shown = 500;
  function poll() {
    var url = new URL(body.dataset.feed, window.location.href);
    url.searchParams.set("after", after);
    fetch(url.toString(), { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (answer) {
        if (!answer.ok) { throw new Error("status " + answer.status); }
        return answer.json();
      })
      .then(function (data) {
        if (data.rows) {
          body.insertAdjacentHTML("afterbegin", data.rows);
          var empty = document.getElementById("tail-empty");
          if (empty) { empty.remove(); }
          while (body.rows.length > shown) { body.deleteRow(-1); }
        }
        after = String(data.after);
        status.textContent = "Live: new events appear at the top as they arrive.";
      })
      .catch(function () {
        status.textContent = "Live tail paused: the server does not answer (retrying every second).";
      })
      .then(function () { window.setTimeout(poll, 1000); });
  }
  status.textContent = "Live: new events appear at the top as they arrive.";
  window.setTimeout(poll, 1000);
})();
"""

#: name -> (content type, text)
FILES: Dict[str, Tuple[str, str]] = {
    "ui.css": ("text/css; charset=utf-8", CSS.lstrip()),
    "ui.js": ("text/javascript; charset=utf-8", JS.lstrip()),
}
