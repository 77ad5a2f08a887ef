"""The ``posthog-otel`` command: a local PostHog, its inspection commands, demo, doctor, gateway.

A problem the user can fix (a port in use, a database that cannot be used, a bad flag
file) ends the command with one line on stderr saying what is wrong and what to do, and
exit status 1; a bad argument, with argparse's status 2.  List commands print JSON Lines
with ``--json`` (one object per line: the same for a finished list and for
``events -f``, which never finishes); ``person --json`` prints one object, or ``null``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import errno
import json
import os
import re
import shlex
import sys
import threading
import time
from typing import Any, Callable, Dict, List, NoReturn, Optional, TextIO

from ._command import CommandError as CommandError  # re-exported: the gateway command imports it from here
from ._version import __version__

DEFAULT_PORT = 8010


def main(argv: Optional[List[str]] = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(out)
        return 2
    from ._local.database import DatabaseError
    from ._local.flag_file import FlagFileError

    try:
        return int(args.run(args, out, err) or 0)
    except (CommandError, DatabaseError, FlagFileError) as problem:
        out.flush()
        err.write("posthog-otel %s: %s\n" % (args.command, problem))
        return 1
    except KeyboardInterrupt:
        return 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, not the usage block: what is wrong and where the help is."""
        self.exit(2, "%s: %s (see %s --help)\n" % (self.prog, message, self.prog))


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="posthog-otel",
        description="PostHog people and groups through OpenTelemetry: a local PostHog to develop against, and checks.",
    )
    parser.add_argument("--version", action="version", version="posthog-otel %s" % __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, run: Any, help: str, inspect: bool = False) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        if name != "doctor":
            sub.add_argument(
                "--db", help="SQLite database (default: $POSTHOG_OTEL_LOCAL_DB or the user data directory)"
            )
        if inspect:
            sub.add_argument(
                "--key",
                help="the project to show: its API key, or its id from `posthog-otel projects` "
                "(default: $POSTHOG_API_KEY, else the only project in the database; several: all, with a project column)",
            )
            sub.add_argument("--json", action="store_true", help="print JSON (lists: one object per line)")
        return sub

    demo = command(
        "demo", _demo, "run the user and group story through a real OTel pipeline and show what PostHog would hold"
    )
    demo.add_argument("--serve", action=argparse.BooleanOptionalAction, default=None,
                      help="keep serving the demo person's page until Ctrl-C (default: when run in a terminal)")  # fmt: skip
    server = command("server", _server, "run the local PostHog-compatible capture server on 127.0.0.1")
    server.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help="port (default %d; 0 picks a free one)" % DEFAULT_PORT
    )
    server.add_argument(
        "--flags",
        help="JSON file of feature flags to answer: PostHog's definitions, or e.g. "
        '{"new_dashboard": true, "checkout": "test"}',
    )
    server.add_argument("-v", "--verbose", action="store_true", help="print one line per request")
    command("projects", _projects, "list the projects (API keys) that sent data, with their counts", inspect=True)
    command("persons", _persons, "list persons with their distinct ids and properties", inspect=True)
    person = command("person", _person, "show one person: properties, distinct ids, recent events", inspect=True)
    person.add_argument("distinct_id")
    command("groups", _groups, "list groups with their properties", inspect=True)
    events = command("events", _events, "list recent events", inspect=True)
    events.add_argument("--limit", type=int, default=20, help="how many recent events (default 20)")
    events.add_argument("--distinct-id", help="only this distinct id")
    events.add_argument("--event", help="only this event name")
    events.add_argument("-f", "--follow", action="store_true", help="keep printing new events (Ctrl-C stops)")
    doctor = command("doctor", _doctor, "check this environment's PostHog and OpenTelemetry set-up")
    doctor.add_argument("--offline", action="store_true", help="do not try to reach the PostHog host")
    from ._flags.cli import add_flags_command

    add_flags_command(commands)
    _add_gateway_command(commands)
    return parser


def _add_gateway_command(commands: Any) -> None:
    about = ("receive OTLP/HTTP logs from any OpenTelemetry SDK or Collector and send the PostHog operations "
             "among them to PostHog (needs posthog-otel[gateway]; settings: docs/gateway.md)")  # fmt: skip
    gateway = commands.add_parser("gateway", help=about, description=about)
    gateway.set_defaults(run=_gateway)
    gateway.add_argument("--bind", help="HOST:PORT to listen on (default 127.0.0.1:4318; any non-loopback address "
                         "needs an allow-list)")  # fmt: skip
    gateway.add_argument("--workers", help="worker processes (default: one per core)")
    gateway.add_argument("--threads", help="requests each worker reads at once (default 4)")
    gateway.add_argument("--allow-key", action="append", metavar="KEY",
                         help="a project key the gateway accepts (repeat for several; also POSTHOG_OTEL_GATEWAY_KEYS)")  # fmt: skip


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a port number: use 1-65535, or 0 for a free one" % text) from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("%d is not a port: use 1-65535, or 0 for a free one" % port)
    return port


# --- running things -------------------------------------------------------------------------


def _demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ._local.demo import DemoError, run

    interactive = out.isatty() and sys.stdin is not None and sys.stdin.isatty()
    serve = args.serve if args.serve is not None else interactive
    try:
        return run(out, db_path=args.db, serve=serve)
    except DemoError as problem:
        raise CommandError(str(problem)) from None


def _server(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ._local.flag_file import load_flag_file
    from ._local.server import LocalServer
    from ._local.store import Store

    flags = load_flag_file(args.flags) if args.flags else {}
    store = Store(args.db)
    try:
        server = LocalServer(store, port=args.port, flags=flags, on_request=_request_log(out) if args.verbose else None)
    except OSError as error:
        store.close()
        raise CommandError(_cannot_listen(args.port, error)) from None
    db = " --db %s" % shlex.quote(str(store.path)) if args.db else ""
    out.write("posthog-otel local server listening on %s\n" % server.url)
    out.write("  database: %s\n" % store.path)
    if args.flags:
        count = len(server.flags.definitions.flags)
        out.write("  flags: %s (%d flag%s)\n" % (args.flags, count, "" if count == 1 else "s"))
    out.write("  web pages: %s/ (persons, groups, events, exceptions, flags)\n" % server.url)
    out.write("  point your app at it: POSTHOG_HOST=%s POSTHOG_API_KEY=phc_anything\n" % server.url)
    out.write("  inspect: posthog-otel events -f%s   (also: persons, person ID, groups, projects)\n" % db)
    out.write("  %s(Ctrl-C stops)\n" % ("requests are printed below " if args.verbose else ""))
    out.flush()
    try:
        server.serve_forever()
    finally:
        server.stop()
        store.close()
    return 0


def _cannot_listen(port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            "port %d is in use (another posthog-otel server?): choose another with --port, or --port 0 for a free one"
            % port
        )
    if error.errno == errno.EACCES:
        return "port %d needs privileges on this system: choose one above 1023 with --port" % port
    return "cannot listen on 127.0.0.1:%d (%s): choose another port with --port" % (port, error.strerror or error)


def _request_log(out: TextIO) -> Callable[[str], None]:
    lock = threading.Lock()

    def log(line: str) -> None:
        with lock:
            out.write("%s %s\n" % (_dt.datetime.now().strftime("%H:%M:%S"), line))
            out.flush()

    return log


def _gateway(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .gateway._serve import run

    return run(args, out)


def _doctor(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ._doctor import diagnose, report

    out.write("posthog-otel doctor\n\n")
    return report(diagnose(check_network=not args.offline, in_app=False), out)


# --- inspecting the local database -------------------------------------------------------------


class _Inspection:
    """An opened database and the project the command is about (None: every project)."""

    def __init__(self, args: argparse.Namespace, err: TextIO) -> None:
        from ._local.store import Store

        self.store = Store(args.db, create=False)
        self.project = _choose_project(args, self.store, err)
        self.several = self.project is None

    def close(self) -> None:
        self.store.close()


def _choose_project(args: argparse.Namespace, store: Any, err: TextIO) -> Optional[str]:
    from ._config import redact
    from ._local.store import project_of

    known = [p["project"] for p in store.projects()]
    given, source = args.key, "--key"
    if not given:
        for variable in ("POSTHOG_API_KEY", "POSTHOG_PROJECT_API_KEY"):
            if os.environ.get(variable, "").strip():
                given, source = os.environ[variable], variable
                break
    if not given:
        return known[0] if len(known) == 1 else None
    given = given.strip()
    project = given if re.fullmatch(r"[0-9a-f]{12}", given) and given in known else project_of(given)
    if project not in known and known:
        err.write(
            "posthog-otel: nothing from the key in %s (%s) in %s; %d other project(s) there: "
            "`posthog-otel projects` lists them, --key chooses one\n" % (source, redact(given), store.path, len(known))
        )
    return project


def _inspect(args: argparse.Namespace, out: TextIO, err: TextIO, show: Callable[[_Inspection], int]) -> int:
    inspection = _Inspection(args, err)
    try:
        return show(inspection)
    finally:
        inspection.close()


def _write_list(records: List[Dict[str, Any]], as_json: bool, out: TextIO, render: Callable[[], str]) -> None:
    if as_json:
        for record in records:
            out.write(json.dumps(record) + "\n")
    else:
        out.write(render() + "\n")


def _projects(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ._local.render import projects_table

    def show(db: _Inspection) -> int:
        projects = db.store.projects()
        _write_list(projects, args.json, out, lambda: projects_table(projects))
        return 0

    return _inspect(args, out, err, show)


def _persons(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ._local.render import persons_table

    def show(db: _Inspection) -> int:
        persons = db.store.persons(db.project)
        _write_list(persons, args.json, out, lambda: persons_table(persons, show_project=db.several))
        return 0

    return _inspect(args, out, err, show)


def _person(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ._local.render import person_detail

    def show(db: _Inspection) -> int:
        try:
            person = db.store.person(args.distinct_id, db.project)
        except ValueError as ambiguous:
            raise CommandError("%s: choose one with --key (`posthog-otel projects` lists them)" % ambiguous) from None
        if person is None:
            if args.json:
                out.write("null\n")
            err.write("posthog-otel person: no person has the distinct id %r\n" % args.distinct_id)
            return 1
        out.write((json.dumps(person, indent=2) if args.json else person_detail(person)) + "\n")
        return 0

    return _inspect(args, out, err, show)


def _groups(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ._local.render import groups_table

    def show(db: _Inspection) -> int:
        groups = db.store.groups(db.project)
        _write_list(groups, args.json, out, lambda: groups_table(groups, show_project=db.several))
        return 0

    return _inspect(args, out, err, show)


def _events(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ._local.render import events_table

    def write(events: List[Dict[str, Any]], header: bool, several: bool) -> None:
        if events or args.json:
            render = lambda: events_table(events, header=header, show_project=several)  # noqa: E731
            _write_list(events, args.json, out, render)

    def show(db: _Inspection) -> int:
        filters: Dict[str, Any] = {"project": db.project, "distinct_id": args.distinct_id, "event": args.event}
        events = db.store.events(limit=args.limit, **filters)
        write(events, True, db.several)
        if not args.json:
            out.write("%d event(s)%s\n" % (len(events), ", following (Ctrl-C stops)" if args.follow else ""))
        last = events[-1]["seq"] if events else _last_seq(db.store)
        while args.follow:
            out.flush()
            time.sleep(0.5)
            new = db.store.events(after_seq=last, **filters)
            if new:
                write(new, False, db.several)
                last = new[-1]["seq"]
        return 0

    return _inspect(args, out, err, show)


def _last_seq(store: Any) -> int:
    latest = store.events(limit=1)
    return int(latest[-1]["seq"]) if latest else 0


if __name__ == "__main__":
    sys.exit(main())
