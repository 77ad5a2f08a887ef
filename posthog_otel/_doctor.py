"""``posthog-otel doctor`` / ``posthog_otel.doctor()``: check a set-up, say how to fix it.

Run from the command line it checks the environment (key, host, the
``opentelemetry-instrument`` variables and their traps); called inside an application
(``posthog_otel.doctor()``) or run as ``opentelemetry-instrument posthog-otel doctor`` it
also sees the process's LoggerProvider and what is attached to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, List, Mapping, Optional, TextIO

import requests
from opentelemetry import _logs as otel_logs

from ._config import Settings, redact
from ._emit import is_placeholder

OK, WARN, PROBLEM = "ok", "warn", "problem"
_LABEL = {OK: "  ok ", WARN: "warn ", PROBLEM: "FAIL "}


@dataclass(frozen=True)
class Finding:
    level: str
    topic: str
    message: str
    fix: str = ""


def diagnose(environ: Optional[Mapping[str, str]] = None, check_network: bool = True) -> List[Finding]:
    environ = os.environ if environ is None else environ
    findings = [_api_key(environ)]
    findings += _host(environ, check_network)
    findings += _sdk_disabled(environ)
    findings.append(_provider())
    findings += _spool(environ)
    findings += _instrument_variables(environ)
    return findings


def report(findings: Iterable[Finding], out: TextIO) -> int:
    """Print findings; the exit status is 1 when any is a problem."""
    findings = list(findings)
    width = max(len(f.topic) for f in findings)
    for finding in findings:
        out.write("%s %s  %s\n" % (_LABEL[finding.level], finding.topic.ljust(width), finding.message))
        if finding.fix:
            out.write("      %s  fix: %s\n" % (" " * width, finding.fix))
    problems = sum(f.level == PROBLEM for f in findings)
    warnings = sum(f.level == WARN for f in findings)
    out.write("\n%d problem(s), %d warning(s)\n" % (problems, warnings))
    return 1 if problems else 0


def doctor(out: Optional[TextIO] = None, check_network: bool = True) -> int:
    """Check this process's set-up and print the findings (to stdout by default)."""
    import sys

    return report(diagnose(check_network=check_network), out or sys.stdout)


def _api_key(environ: Mapping[str, str]) -> Finding:
    key = (environ.get("POSTHOG_API_KEY") or environ.get("POSTHOG_PROJECT_API_KEY") or "").strip()
    if not key:
        return Finding(
            PROBLEM, "API key", "POSTHOG_API_KEY is not set",
            "export POSTHOG_API_KEY=phc_... (Project settings > Project API key); without it use `posthog-otel server`",
        )  # fmt: skip
    if key.startswith("phx_"):
        return Finding(
            PROBLEM, "API key", "POSTHOG_API_KEY holds a personal API key (%s), which ingestion refuses" % redact(key),
            "use the project API key, which starts with phc_",
        )  # fmt: skip
    if not key.startswith("phc_") or len(key) < 20:
        return Finding(
            WARN, "API key", "POSTHOG_API_KEY (%s) does not look like a project key" % redact(key),
            "project API keys start with phc_ and are about 47 characters long",
        )  # fmt: skip
    return Finding(OK, "API key", "POSTHOG_API_KEY is set (%s)" % redact(key))


def _host(environ: Mapping[str, str], check_network: bool) -> List[Finding]:
    text = environ.get("POSTHOG_HOST")
    try:
        host = Settings.resolve(environ={}, host=text).host if text else Settings.resolve(environ={}).host
    except ValueError as error:
        return [Finding(PROBLEM, "Host", "POSTHOG_HOST=%r is invalid: %s" % (text, error), "use https://us.i.posthog.com, https://eu.i.posthog.com or your instance's URL")]
    findings = [Finding(OK, "Host", "sending to %s%s" % (host, "" if text else " (the default)"))]
    if not check_network:
        return findings
    try:
        requests.get(host + "/", timeout=3)
    except requests.RequestException as error:
        findings.append(
            Finding(
                PROBLEM, "Reachable", "cannot reach %s (%s)" % (host, type(error).__name__),
                "check POSTHOG_HOST, DNS, proxies (HTTPS_PROXY) and firewalls from this machine",
            )  # fmt: skip
        )
    else:
        findings.append(Finding(OK, "Reachable", "%s answers" % host))
    return findings


def _spool(environ: Mapping[str, str]) -> List[Finding]:
    """Batches an earlier process could not deliver, waiting for this key and host."""
    from ._spool import spool_directory
    from ._spool import DiskSpool

    try:
        settings = Settings.resolve(environ=environ)
    except (TypeError, ValueError):
        return []
    if not settings.api_key or not settings.spool:
        return []
    directory = spool_directory(settings)
    if not directory.exists():
        return [Finding(OK, "Spool", "nothing waiting (%s)" % directory.parent)]
    try:
        depth = DiskSpool(directory, settings.spool_max_bytes, settings.spool_max_age).depth()
    except OSError as error:
        return [Finding(WARN, "Spool", "%s is not writable (%s): outages would be buffered in memory only" % (directory, error),
                        "make the directory writable, or set POSTHOG_OTEL_SPOOL_DIR")]  # fmt: skip
    if not depth.batches:
        return [Finding(OK, "Spool", "nothing waiting (%s)" % directory)]
    return [
        Finding(
            WARN, "Spool",
            "%d batch(es), %d bytes, waiting in %s for %.0f s" % (depth.batches, depth.bytes, directory, depth.oldest_age),
            "they are sent by the next process with this key and host once PostHog answers",
        )  # fmt: skip
    ]


def _sdk_disabled(environ: Mapping[str, str]) -> List[Finding]:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return [Finding(PROBLEM, "SDK", "OTEL_SDK_DISABLED=true turns every OTel provider into a no-op", "unset OTEL_SDK_DISABLED")]
    return []


def _provider() -> Finding:
    provider = otel_logs.get_logger_provider()
    if is_placeholder(provider):
        return Finding(
            WARN, "Provider", "no OpenTelemetry LoggerProvider in this process: operations would be dropped",
            "call posthog_otel.configure() at start-up, or run under opentelemetry-instrument "
            "(`opentelemetry-instrument posthog-otel doctor` checks that set-up)",
        )  # fmt: skip
    exporters = [type(e).__name__ for e in _exporters_of(provider)]
    if "PostHogLogExporter" in exporters:
        return Finding(OK, "Provider", "an SDK LoggerProvider with the PostHog exporter is installed")
    return Finding(
        PROBLEM, "Provider", "the LoggerProvider has no PostHog exporter (exporters: %s)" % (", ".join(exporters) or "none"),
        "call posthog_otel.configure(), or add posthog to OTEL_LOGS_EXPORTER",
    )  # fmt: skip


def _exporters_of(provider: Any) -> List[Any]:
    """Best effort: the SDK keeps processors in private attributes, which may change."""
    found = []
    multi = getattr(provider, "_multi_log_record_processor", None)
    for processor in getattr(multi, "_log_record_processors", ()) or ():
        exporter = getattr(processor, "exporter", None) or getattr(processor, "_exporter", None)
        inner = getattr(processor, "_batch_processor", None)
        if exporter is None and inner is not None:
            exporter = getattr(inner, "_exporter", None)
        if exporter is not None:
            found.append(exporter)
    return found


def _instrument_variables(environ: Mapping[str, str]) -> List[Finding]:
    distro = _has_module("opentelemetry.distro")
    findings = []
    logs = _names(environ.get("OTEL_LOGS_EXPORTER"))
    if "posthog" in logs:
        findings.append(
            Finding(OK, "Auto-config", "OTEL_LOGS_EXPORTER includes posthog")
            if _entry_point("opentelemetry_logs_exporter", "posthog")
            else Finding(PROBLEM, "Auto-config", "OTEL_LOGS_EXPORTER names posthog but its entry point is missing", "pip install posthog-otel in this environment")
        )
    else:
        findings.append(
            Finding(
                WARN, "Auto-config",
                "OTEL_LOGS_EXPORTER %s: opentelemetry-instrument will not load the PostHog exporter"
                % ("is not set" if not logs else "is %s" % ",".join(logs)),
                "export OTEL_LOGS_EXPORTER=posthog (or otlp,posthog); not needed if you call posthog_otel.configure()",
            )  # fmt: skip
        )
    for signal, variable in (("traces", "OTEL_TRACES_EXPORTER"), ("metrics", "OTEL_METRICS_EXPORTER"), ("logs", "OTEL_LOGS_EXPORTER")):
        names = _names(environ.get(variable))
        implied = not names and distro
        for name in names or (["otlp"] if implied else []):
            entry = _entry_name(name, signal, environ)
            if name == "none" or _entry_point("opentelemetry_%s_exporter" % signal, entry):
                continue
            cause = "defaults to" if implied else "names"
            shown = name if entry == name else "%s (entry point %s)" % (name, entry)
            findings.append(
                Finding(
                    PROBLEM, "Auto-config",
                    "%s %s %s, which is not installed: opentelemetry-instrument's set-up fails and configures "
                    "nothing, PostHog included" % (variable, cause, shown),
                    "export %s=none (or install the exporter it names)" % variable,
                )  # fmt: skip
            )
    return findings


def _entry_name(name: str, signal: str, environ: Mapping[str, str]) -> str:
    """The entry point the SDK looks up: ``otlp`` means gRPC unless a protocol says http."""
    if name != "otlp":
        return name
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_%s_PROTOCOL" % signal.upper()) or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    )
    return "otlp_proto_http" if protocol.strip().startswith("http") else "otlp_proto_grpc"


def _names(value: Optional[str]) -> List[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


def _entry_point(group: str, name: str) -> bool:
    from importlib.metadata import entry_points

    every: Any = entry_points()  # Python 3.9: a dict of groups; later: selectable
    found = every.select(group=group) if hasattr(every, "select") else every.get(group, ())
    return any(ep.name == name for ep in found)


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
