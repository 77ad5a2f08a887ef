"""The ``posthog-otel`` command: a local PostHog, its inspection commands, demo, doctor."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, List, Optional, TextIO

DEFAULT_PORT = 8010


def main(argv: Optional[List[str]] = None, out: TextIO = sys.stdout) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(out)
        return 2
    try:
        return int(args.run(args, out) or 0)
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posthog-otel",
        description="PostHog people and groups through OpenTelemetry: a local PostHog to develop against, and checks.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, run: Any, help: str, db: bool = True, json_output: bool = False) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        if db:
            sub.add_argument("--db", help="SQLite database (default: $POSTHOG_OTEL_LOCAL_DB or the user data directory)")
        if json_output:
            sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
        return sub

    command("demo", _demo, "run the seed's scenarios through a real OTel pipeline and show the result")
    server = command("server", _server, "run the local PostHog-compatible capture server on 127.0.0.1")
    server.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %d; 0 picks a free one)" % DEFAULT_PORT)
    server.add_argument("--flags", help='JSON file of feature flags to answer, e.g. {"new_dashboard": true, "checkout": "test"}')
    command("persons", _persons, "list persons with their distinct ids and properties", json_output=True)
    person = command("person", _person, "show one person: properties, distinct ids, recent events", json_output=True)
    person.add_argument("distinct_id")
    command("groups", _groups, "list groups with their properties", json_output=True)
    events = command("events", _events, "list recent events", json_output=True)
    events.add_argument("--limit", type=int, default=20, help="how many recent events (default 20)")
    events.add_argument("--distinct-id", help="only this distinct id")
    events.add_argument("--event", help="only this event name")
    events.add_argument("-f", "--follow", action="store_true", help="keep printing new events (Ctrl-C stops)")
    doctor = command("doctor", _doctor, "check this environment's PostHog and OpenTelemetry set-up", db=False)
    doctor.add_argument("--offline", action="store_true", help="do not try to reach the PostHog host")
    from ._flags.cli import add_flags_command

    add_flags_command(commands)
    return parser


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from ._local.demo import run

    return run(out, db_path=args.db)


def _server(args: argparse.Namespace, out: TextIO) -> int:
    from ._local.server import LocalServer
    from ._local.store import Store

    flags = json.loads(Path(args.flags).read_text()) if args.flags else {}
    store = Store(args.db)
    server = LocalServer(store, port=args.port, flags=flags)
    out.write("posthog-otel local server listening on %s\n" % server.url)
    out.write("  database: %s\n" % store.path)
    out.write("  point your app at it: POSTHOG_HOST=%s POSTHOG_API_KEY=phc_anything\n" % server.url)
    out.write("  inspect: posthog-otel persons | groups | events -f     (Ctrl-C stops)\n")
    out.flush()
    try:
        server.serve_forever()
    finally:
        server.stop()
        store.close()
    return 0


def _open_store(args: argparse.Namespace, out: TextIO) -> Any:
    from ._local.store import Store, default_path

    path = Path(args.db) if args.db else default_path()
    if not path.exists():
        out.write("No local database at %s yet: run `posthog-otel server` or `posthog-otel demo` first.\n" % path)
        return None
    return Store(path)


def _show(args: argparse.Namespace, out: TextIO, read: Any, render: Any, missing: str = "") -> int:
    """Open the store, read one thing, print it as a table (or JSON); 1 when there is nothing."""
    store = _open_store(args, out)
    if store is None:
        return 1
    value = read(store)
    if value is None:
        out.write(missing)
        return 1
    out.write((json.dumps(value, indent=2) if args.json else render(value)) + "\n")
    return 0


def _persons(args: argparse.Namespace, out: TextIO) -> int:
    from ._local.render import persons_table

    return _show(args, out, lambda store: store.persons(), persons_table)


def _person(args: argparse.Namespace, out: TextIO) -> int:
    from ._local.render import person_detail

    missing = "No person has the distinct id %r.\n" % args.distinct_id
    return _show(args, out, lambda store: store.person(args.distinct_id), person_detail, missing)


def _groups(args: argparse.Namespace, out: TextIO) -> int:
    from ._local.render import groups_table

    return _show(args, out, lambda store: store.groups(), groups_table)


def _events(args: argparse.Namespace, out: TextIO) -> int:
    store = _open_store(args, out)
    if store is None:
        return 1
    filters = {"distinct_id": args.distinct_id, "event": args.event}
    events = store.events(limit=args.limit, **filters)
    _write_events(events, args.json, out, header=True)
    if not args.json:
        out.write("%d event(s)%s\n" % (len(events), ", following (Ctrl-C stops)" if args.follow else ""))
    last = events[-1]["seq"] if events else _last_seq(store)
    while args.follow:
        out.flush()
        time.sleep(0.5)
        new = store.events(after_seq=last, **filters)
        if new:
            _write_events(new, args.json, out, header=False)
            last = new[-1]["seq"]
    return 0


def _write_events(events: List[Any], as_json: bool, out: TextIO, header: bool) -> None:
    from ._local.render import events_table

    if as_json:
        for event in events:
            out.write(json.dumps(event) + "\n")
    elif events:
        out.write(events_table(events, header=header) + "\n")


def _last_seq(store: Any) -> int:
    latest = store.events(limit=1)
    return latest[-1]["seq"] if latest else 0


def _doctor(args: argparse.Namespace, out: TextIO) -> int:
    from ._doctor import diagnose, report

    out.write("posthog-otel doctor\n\n")
    return report(diagnose(check_network=not args.offline), out)


if __name__ == "__main__":
    sys.exit(main())
