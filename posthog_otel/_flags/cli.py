"""``posthog-otel flags``: list the flags, and explain one flag's answer for one person.

    posthog-otel flags [--definitions FILE]
    posthog-otel flags explain KEY DISTINCT_ID [--prop plan=enterprise] [--group company=acme]
                                               [--group-prop company.size=500] [--device-id ID]

Definitions come from ``--definitions`` (PostHog's format, or the simple
``{"flag": value}`` one) or, without it, from PostHog itself (``POSTHOG_HOST``,
``POSTHOG_API_KEY`` and a personal key in ``POSTHOG_PERSONAL_API_KEY``; the local server
accepts any). Property values given on the command line are strings, as a form would
send them; numeric and date filters read numbers and dates from strings.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List, Mapping, Optional, TextIO, Tuple

from .._command import CommandError
from .._config import Settings
from .definitions import Definitions, Flag
from .errors import Undecidable
from .poller import DefinitionsPoller
from .service import personal_key


def add_flags_command(commands: Any) -> None:
    """Add ``flags`` (and ``flags explain``) to the ``posthog-otel`` sub-commands."""
    flags = commands.add_parser("flags", help="list feature flags, or explain one flag's answer",
                                description="List feature flags, or explain why a flag answers what it does.")  # fmt: skip
    _source_arguments(flags, None)
    flags.add_argument("--json", action="store_true", help="print the definitions as JSON")
    flags.set_defaults(run=run_list)
    explain = flags.add_subparsers(dest="flags_command", metavar="COMMAND").add_parser(
        "explain", help="evaluate one flag for one person and say why", description="Evaluate one flag and say why."
    )
    explain.add_argument("key", help="the flag's key")
    explain.add_argument("distinct_id", help="the person's distinct id")
    explain.add_argument(
        "--prop", action="append", default=[], metavar="NAME=VALUE", help="a person property (repeatable)"
    )
    explain.add_argument(
        "--group", action="append", default=[], metavar="TYPE=KEY", help="a group, e.g. company=acme (repeatable)"
    )
    explain.add_argument("--group-prop", action="append", default=[], metavar="TYPE.NAME=VALUE",
                         help="a group property, e.g. company.size=500 (repeatable)")  # fmt: skip
    explain.add_argument("--device-id", help="the device id, for flags bucketed by device")
    _source_arguments(explain, argparse.SUPPRESS)  # given before or after "explain", either works
    explain.set_defaults(run=run_explain)


def _source_arguments(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--definitions", metavar="FILE", default=default,
                        help="a flag definitions file (default: ask POSTHOG_HOST)")  # fmt: skip


class Failure(Exception):
    """Something the user can fix; the message says what."""


def load_definitions(path: Optional[str]) -> Definitions:
    if path:
        from .._local.flags import load_file

        try:
            return load_file(path)
        except (OSError, ValueError) as problem:
            raise Failure("cannot read flag definitions from %s" % problem) from None
    settings = Settings.resolve()
    key = personal_key(settings)
    if not settings.api_key or not key:
        raise Failure("no flag definitions: pass --definitions FILE, or set POSTHOG_API_KEY and "
                      "POSTHOG_PERSONAL_API_KEY (and POSTHOG_HOST) to read them from PostHog")  # fmt: skip
    poller = DefinitionsPoller(settings.host, settings.api_key, key, settings.poll_interval)
    poller.poll()
    poller.stop()
    if poller.definitions is None:
        raise Failure("could not load flag definitions from %s (see the warning above)" % settings.host)
    return poller.definitions


def run_list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        definitions = load_definitions(args.definitions)
    except Failure as problem:
        raise CommandError(str(problem)) from None
    if args.json:
        out.write(json.dumps(definitions.to_response(), indent=2) + "\n")
        return 0
    rows = [("FLAG", "ACTIVE", "FOR", "CONDITIONS", "VARIANTS")] + [_row(f, definitions) for f in definitions.flags]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n")
    out.write("%d flag%s\n" % (len(definitions.flags), "" if len(definitions.flags) == 1 else "s"))
    return 0


def _row(flag: Flag, definitions: Definitions) -> Tuple[str, str, str, str, str]:
    audience = "persons"
    if flag.aggregation is not None:
        audience = definitions.group_type_mapping.get(str(flag.aggregation), "group #%s" % flag.aggregation)
    conditions = []
    for condition in flag.conditions:
        filters = ", ".join(f.describe() for f in condition.filters) or "everyone"
        rollout = "" if condition.rollout is None else " @ %s%%" % condition.rollout
        conditions.append(filters + rollout)
    variants = ", ".join("%s %g%%" % (key, (high - low) * 100) for low, high, key in flag.variants)
    return (str(flag.key), "yes" if flag.active else "no", audience, "; ".join(conditions) or "none", variants or "-")


def run_explain(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        definitions = load_definitions(args.definitions)
        request = _request(args)
    except Failure as problem:
        raise CommandError(str(problem)) from None
    flag = definitions.by_key.get(args.key)
    if flag is None:
        known = ", ".join(str(f.key) for f in definitions.flags) or "none"
        raise CommandError("No flag %r in the definitions (flags: %s)." % (args.key, known))
    explain(definitions, flag, request, out)
    return 0


def explain(definitions: Definitions, flag: Flag, request: Dict[str, Any], out: TextIO) -> None:
    """Evaluate ``flag`` for ``request`` (a ``/flags`` body) and write the answer and why."""
    from .._local.flags import LocalFlags

    trace: List[Tuple[int, str]] = []
    evaluation, person = LocalFlags(definitions).evaluation(request, trace)
    try:
        answer = json.dumps(evaluation.value(flag, person))
        verdict = "%s (decided locally)" % answer
    except Undecidable as problem:
        verdict = "not decidable locally (%s): %s; PostHog's /flags is asked" % (problem.reason.value, problem.why)
    except Exception as problem:
        verdict = "not decidable locally: the definition cannot be read (%s); PostHog's /flags is asked" % problem
    out.write("%s for %s: %s\n" % (flag.key, request["distinct_id"], verdict))
    out.write("  person properties: %s\n" % _shown(person))
    for name, key in evaluation.groups.items():
        out.write("  %s %s: %s\n" % (name, key, _shown(evaluation.group_properties[name])))
    for depth, line in trace:
        out.write("  " + "  " * depth + line + "\n")


def _request(args: argparse.Namespace) -> Dict[str, Any]:
    groups = dict(_pair(text, "--group", "=") for text in args.group)
    group_properties: Dict[str, Dict[str, str]] = {}
    for text in args.group_prop:
        target, value = _pair(text, "--group-prop", "=")
        group_type, _, name = target.partition(".")
        if not name:
            raise Failure("--group-prop %r: write TYPE.NAME=VALUE, e.g. company.size=500" % text)
        group_properties.setdefault(group_type, {})[name] = value
    missing = sorted(set(group_properties) - set(groups))
    if missing:
        raise Failure("--group-prop for %s without --group %s=KEY" % (", ".join(missing), missing[0]))
    return {
        "distinct_id": args.distinct_id,
        "person_properties": dict(_pair(text, "--prop", "=") for text in args.prop),
        "groups": groups,
        "group_properties": group_properties,
        "device_id": args.device_id,
    }


def _pair(text: str, option: str, separator: str) -> Tuple[str, str]:
    name, found, value = text.partition(separator)
    if not found or not name:
        raise Failure("%s %r: write NAME%sVALUE" % (option, text, separator))
    return name, value


def _shown(properties: Mapping[str, Any]) -> str:
    return ", ".join("%s=%r" % item for item in properties.items()) or "none"
