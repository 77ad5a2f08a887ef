"""``posthog-otel doctor`` / ``posthog_otel.doctor()``: check a set-up, say how to fix it.

Each finding is judged against how the process is actually configured:

- called inside an application (``posthog_otel.doctor()``), or run as
  ``opentelemetry-instrument posthog-otel doctor``, it reads the PostHog exporter that is
  really installed (its key, host and spool, whatever the environment says);
- the ``OTEL_*_EXPORTER`` traps only matter to ``opentelemetry-instrument``: they are
  checked when the process runs under it or the environment is set up for it
  (``OTEL_LOGS_EXPORTER`` names posthog), and only mentioned otherwise;
- a fix never switches PostHog off (no ``OTEL_LOGS_EXPORTER=none``);
- run as ``posthog-otel doctor`` outside ``opentelemetry-instrument``, its process is not the
  application: it says what it can check from there (key, host, spool, variables) and how to
  check the rest, rather than report its own process's missing LoggerProvider;
- with the network, nothing is taken on trust: the project key is sent to PostHog's ``/flags``
  the way the SDK sends it (a harmless read: no event, no person), so "ok" means PostHog took
  it; a personal key is tried on ``/flags/definitions`` as local evaluation uses it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, TextIO, Tuple
from urllib.parse import quote, urlsplit

import requests
from opentelemetry import _logs as otel_logs

from . import _state
from ._config import Settings, redact
from ._emitter import is_placeholder

OK, WARN, PROBLEM = "ok", "warn", "problem"
#: Seconds each network check may take.
NETWORK_TIMEOUT = 5.0
#: The distinct id (and the one flag) the key check asks PostHog about: no such person, no such flag.
DOCTOR_ID = "posthog-otel-doctor"
_LABEL = {OK: "  ok ", WARN: "warn ", PROBLEM: "FAIL "}
_SIGNALS = (("traces", "OTEL_TRACES_EXPORTER"), ("metrics", "OTEL_METRICS_EXPORTER"), ("logs", "OTEL_LOGS_EXPORTER"))
_OTLP_PACKAGES = {"otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc", "otlp_proto_http": "opentelemetry-exporter-otlp-proto-http"}  # fmt: skip
_OTLP_PROTOCOLS = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}


@dataclass(frozen=True)
class Finding:
    level: str
    topic: str
    message: str
    fix: str = ""
    host: str = ""  # the host a "Host" finding is about (for the network checks after it)
    key: str = ""  # the project key an "API key" finding is about
    source: str = ""  # where that key came from


@dataclass(frozen=True)
class _Process:
    """What this process really has, as opposed to what the environment suggests."""

    exporter: Optional[Any]  # the PostHog exporter operations go to, if any
    provider: Any  # the global LoggerProvider
    under_instrument: bool  # set up by opentelemetry-instrument (its sitecustomize ran)


def diagnose(
    environ: Optional[Mapping[str, str]] = None, check_network: bool = True, in_app: bool = True
) -> List[Finding]:
    """The findings; ``in_app``: called inside the application (False: ``posthog-otel doctor``,
    whose own process is the application only under ``opentelemetry-instrument``)."""
    environ = os.environ if environ is None else environ
    process = _observe()
    settings = process.exporter.settings if process.exporter is not None else None
    key = _api_key(environ, settings)
    hosts = _host(environ, settings)
    if check_network and hosts[0].level == OK:
        if key.level != PROBLEM:
            reached, key = _ask_posthog(hosts[0].host, key)
        else:  # no usable key to try: only whether anything answers there
            reached = _reachable(hosts[0].host)
        hosts.append(reached)
    findings = [key, *hosts]
    findings += _personal_key(environ, settings, hosts[0].host, check_network and hosts[-1].level == OK)
    findings += _sdk_disabled(environ)
    findings.append(_provider(process, in_app or process.under_instrument))
    findings += _spool(environ, settings)
    findings += _auto_config(environ, process)
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
    return report(diagnose(check_network=check_network), out or sys.stdout)


# --- what the process has ------------------------------------------------------------------


def _observe() -> _Process:
    provider = otel_logs.get_logger_provider()
    exporter = None
    if _state.pipeline is not None:  # configure() in code, on whichever provider it was given
        exporter = _state.pipeline.exporter
    elif not is_placeholder(provider):
        exporter = next((e for e in _exporters_of(provider) if type(e).__name__ == "PostHogLogExporter"), None)
    under = "opentelemetry.instrumentation.auto_instrumentation" in sys.modules
    return _Process(exporter, provider, under)


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


# --- key, host, spool -------------------------------------------------------------------------


def _api_key(environ: Mapping[str, str], settings: Optional[Settings]) -> Finding:
    if settings is not None:
        key, source = settings.api_key or "", "the installed exporter's API key"
    else:
        key = (environ.get("POSTHOG_API_KEY") or environ.get("POSTHOG_PROJECT_API_KEY") or "").strip()
        source = "POSTHOG_API_KEY"
    if not key:
        return Finding(
            PROBLEM, "API key", "POSTHOG_API_KEY is not set",
            "export POSTHOG_API_KEY=phc_... (Project settings > Project API key); without it use `posthog-otel server`",
        )  # fmt: skip
    if key.startswith("phx_"):
        return Finding(
            PROBLEM, "API key", "%s is a personal API key (%s), which ingestion refuses" % (source, redact(key)),
            "use the project API key, which starts with phc_",
        )  # fmt: skip
    if not key.startswith("phc_") and not _is_loopback(_host_of(environ, settings)):
        return Finding(
            WARN, "API key", "%s (%s) does not look like a project key" % (source, redact(key)),
            "project API keys start with phc_ (Project settings > Project API key)", key=key, source=source,
        )  # fmt: skip
    return Finding(OK, "API key", "%s is set (%s)" % (source, redact(key)), key=key, source=source)


def _host_of(environ: Mapping[str, str], settings: Optional[Settings]) -> str:
    if settings is not None:
        return settings.host
    try:
        return Settings.resolve(environ={}, host=environ.get("POSTHOG_HOST") or None).host
    except ValueError:
        return ""


def _is_loopback(host: str) -> bool:
    return (urlsplit(host).hostname or "") in ("127.0.0.1", "localhost", "::1")


def _host(environ: Mapping[str, str], settings: Optional[Settings]) -> List[Finding]:
    text = environ.get("POSTHOG_HOST")
    if settings is not None:
        host, origin = settings.host, " (the installed exporter's)"
    else:
        try:
            host = Settings.resolve(environ={}, host=text).host if text else Settings.resolve(environ={}).host
        except ValueError as error:
            return [Finding(PROBLEM, "Host", "POSTHOG_HOST=%r is invalid: %s" % (text, error), "use https://us.i.posthog.com, https://eu.i.posthog.com or your instance's URL")]  # fmt: skip
        origin = "" if text else " (the default)"
    return [Finding(OK, "Host", "sending to %s%s" % (host, origin), host=host)]


def _reachable(host: str) -> Finding:
    try:
        requests.get(host + "/", timeout=NETWORK_TIMEOUT)
    except requests.RequestException as error:
        return _unreachable(host, error)
    return Finding(OK, "Reachable", "%s answers (without a usable project key, not tried as PostHog)" % host)


def _unreachable(host: str, error: Exception) -> Finding:
    return Finding(
        PROBLEM, "Reachable", "cannot reach %s (%s)" % (host, type(error).__name__),
        "check POSTHOG_HOST, DNS, proxies (HTTPS_PROXY) and firewalls from this machine",
    )  # fmt: skip


def _ask_posthog(host: str, key: Finding) -> Tuple[Finding, Finding]:
    """(Reachable, API key): the key sent to ``/flags`` as the SDK sends it, asking for one flag
    that does not exist: PostHog checks the key first (401 for one it does not know), and a
    flag read writes nothing (no event, no person)."""
    body: Dict[str, Any] = {
        "api_key": key.key,
        "distinct_id": DOCTOR_ID,
        "flag_keys_to_evaluate": [DOCTOR_ID],
        "geoip_disable": True,
    }
    try:
        answer = requests.post(host + "/flags/?v=2", json=body, timeout=NETWORK_TIMEOUT)
    except requests.RequestException as error:
        return _unreachable(host, error), key
    status = answer.status_code
    shown = redact(key.key)
    if status in (401, 403):
        return Finding(OK, "Reachable", "PostHog answers at %s" % host), Finding(
            PROBLEM, "API key", "PostHog at %s refused %s %s (HTTP %d)" % (host, key.source, shown, status),
            "check POSTHOG_API_KEY (Project settings > Project API key), and that POSTHOG_HOST is that project's "
            "region (https://us.i.posthog.com or https://eu.i.posthog.com)",
        )  # fmt: skip
    if status != 200 or not _looks_like_flags(answer):
        failing = status in (500, 502, 503, 504)  # PostHog (or a proxy before it) having trouble
        return Finding(
            WARN if failing else PROBLEM, "Reachable",
            "%s answers, but not as PostHog does: HTTP %d to /flags/%s" % (host, status, "" if status != 200 else " "
                                                                           "without flags"),
            "POSTHOG_HOST must be PostHog's ingestion host (https://us.i.posthog.com, https://eu.i.posthog.com, "
            "your instance's URL, or `posthog-otel server`'s)" if not failing else "PostHog is failing: try again",
        ), key  # fmt: skip
    return Finding(OK, "Reachable", "PostHog answers at %s" % host), Finding(
        OK, "API key", "%s is set (%s), and PostHog at %s accepted it" % (key.source, shown, host), key=key.key
    )


def _looks_like_flags(answer: Any) -> bool:
    try:
        document = answer.json()
    except ValueError:
        return False
    return isinstance(document, dict) and ("flags" in document or "featureFlags" in document)


def _personal_key(
    environ: Mapping[str, str], settings: Optional[Settings], host: str, check_network: bool
) -> List[Finding]:
    """The personal (or secret) key local flag evaluation uses, tried where it is used."""
    if settings is not None:
        personal, project = settings.secret_key or settings.personal_api_key, settings.api_key or ""
    else:
        personal = (environ.get("POSTHOG_SECRET_KEY") or environ.get("POSTHOG_PERSONAL_API_KEY") or "").strip()
        project = (environ.get("POSTHOG_API_KEY") or environ.get("POSTHOG_PROJECT_API_KEY") or "").strip()
    if not personal:
        return []
    shown = redact(personal)
    if personal.startswith("phc_"):
        return [Finding(PROBLEM, "Personal key", "the personal key (%s) is a project key" % shown,
                        "POSTHOG_PERSONAL_API_KEY takes a personal API key (phx_...) with feature flag read access")]  # fmt: skip
    if not check_network or not project or not host:
        return [Finding(OK, "Personal key", "set (%s); not tried%s" % (shown, "" if check_network else " (offline)"))]
    url = "%s/flags/definitions?token=%s&send_cohorts" % (host, quote(project, safe=""))
    try:
        answer = requests.get(url, headers={"Authorization": "Bearer %s" % personal}, timeout=NETWORK_TIMEOUT)
    except requests.RequestException as error:
        return [Finding(WARN, "Personal key", "not tried: %s did not answer (%s)" % (host, type(error).__name__))]
    status = answer.status_code
    if status == 200:
        return [
            Finding(OK, "Personal key", "PostHog accepted the personal key %s: flags are evaluated locally" % shown)
        ]
    if status == 401:
        fix = "check POSTHOG_PERSONAL_API_KEY (Settings > Personal API keys); flags are asked of /flags meanwhile"
        return [Finding(PROBLEM, "Personal key", "PostHog refused the personal key %s (HTTP 401)" % shown, fix)]
    if status == 403:
        return [Finding(PROBLEM, "Personal key", "the personal key %s may not read this project's feature flags "
                        "(HTTP 403)" % shown, "give the key the feature_flag:read scope for this project")]  # fmt: skip
    if status == 402:
        return [Finding(WARN, "Personal key", "PostHog answered HTTP 402: local evaluation is not in this "
                        "organisation's plan; flags are asked of /flags instead")]  # fmt: skip
    return [Finding(WARN, "Personal key", "PostHog answered HTTP %d to /flags/definitions" % status)]


def _spool(environ: Mapping[str, str], settings: Optional[Settings]) -> List[Finding]:
    """Batches an earlier process could not deliver, waiting for this key and host."""
    from ._delivery.spool import DiskSpool, spool_directory

    if settings is None:
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
            WARN,
            "Spool",
            "%d batch(es), %d bytes, waiting in %s for %.0f s"
            % (depth.batches, depth.bytes, directory, depth.oldest_age),
            "they are sent by the next process with this key and host once PostHog answers",
        )  # fmt: skip
    ]


# --- the OpenTelemetry set-up -------------------------------------------------------------------


def _sdk_disabled(environ: Mapping[str, str]) -> List[Finding]:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return [
            Finding(
                PROBLEM,
                "SDK",
                "OTEL_SDK_DISABLED=true turns every OTel provider into a no-op",
                "unset OTEL_SDK_DISABLED",
            )
        ]
    return []


def _provider(process: _Process, in_app: bool) -> Finding:
    if process.exporter is None and not in_app:
        return Finding(
            OK, "Provider",
            "checked from the command line, which is not your application: call posthog_otel.doctor() inside it "
            "(after configure()) to check its provider, or run `opentelemetry-instrument posthog-otel doctor` "
            "for an opentelemetry-instrument set-up",
        )  # fmt: skip
    if process.exporter is not None:
        how = "posthog_otel.configure()" if _state.pipeline is not None else "the global LoggerProvider"
        return Finding(OK, "Provider", "the PostHog exporter is installed (by %s)" % how)
    if is_placeholder(process.provider) and process.under_instrument:
        return Finding(
            PROBLEM, "Provider", "opentelemetry-instrument installed no LoggerProvider: its set-up failed",
            "see the Auto-config findings below (and opentelemetry-instrument's own error above)",
        )  # fmt: skip
    if is_placeholder(process.provider):
        return Finding(
            WARN, "Provider", "no OpenTelemetry LoggerProvider in this process: operations would be dropped",
            "call posthog_otel.configure() at start-up, or run under opentelemetry-instrument "
            "(`opentelemetry-instrument posthog-otel doctor` checks that set-up)",
        )  # fmt: skip
    exporters = [type(e).__name__ for e in _exporters_of(process.provider)]
    return Finding(
        PROBLEM, "Provider", "the LoggerProvider has no PostHog exporter (exporters: %s)" % (", ".join(exporters) or "none"),
        "call posthog_otel.configure(), or add posthog to OTEL_LOGS_EXPORTER",
    )  # fmt: skip


def _auto_config(environ: Mapping[str, str], process: _Process) -> List[Finding]:
    """``opentelemetry-instrument``'s variables: checked when they are in play."""
    logs = _names(environ.get("OTEL_LOGS_EXPORTER"))
    in_play = process.under_instrument or "posthog" in logs
    if not in_play:
        if process.exporter is not None or not any(environ.get(v) for _, v in _SIGNALS):
            return [
                Finding(
                    OK,
                    "Auto-config",
                    "not set up for opentelemetry-instrument (OTEL_LOGS_EXPORTER does not name posthog): "
                    "fine when the application calls posthog_otel.configure()",
                )  # fmt: skip
            ]
        return [
            Finding(
                WARN,
                "Auto-config",
                "OTEL_LOGS_EXPORTER %s: opentelemetry-instrument would not load the PostHog exporter"
                % ("is not set" if not logs else "is %s" % ",".join(logs)),
                "export OTEL_LOGS_EXPORTER=posthog (or otlp,posthog); not needed if you call posthog_otel.configure()",
            )  # fmt: skip
        ]
    findings = []
    if "posthog" in logs:
        findings.append(
            Finding(OK, "Auto-config", "OTEL_LOGS_EXPORTER includes posthog")
            if _entry_point("opentelemetry_logs_exporter", "posthog")
            else Finding(
                PROBLEM,
                "Auto-config",
                "OTEL_LOGS_EXPORTER names posthog but its entry point is missing",
                "install posthog-otel in this environment (the one opentelemetry-instrument runs)",
            )  # fmt: skip
        )
    elif process.exporter is None:
        findings.append(
            Finding(
                PROBLEM,
                "Auto-config",
                "OTEL_LOGS_EXPORTER %s: opentelemetry-instrument does not load the PostHog exporter"
                % ("is not set" if not logs else "is %s" % ",".join(logs)),
                "export OTEL_LOGS_EXPORTER=posthog (or otlp,posthog)",
            )  # fmt: skip
        )
    distro = _has_module("opentelemetry.distro")
    for signal, variable in _SIGNALS:
        names = _names(environ.get(variable))
        implied = not names and distro
        for name in names or (["otlp"] if implied else []):
            finding = _exporter_finding(signal, variable, name, implied, environ)
            if finding is not None:
                findings.append(finding)
    return findings


def _exporter_finding(
    signal: str, variable: str, name: str, implied: bool, environ: Mapping[str, str]
) -> Optional[Finding]:
    """A PROBLEM when ``name`` cannot be loaded: the distro's set-up then fails whole."""
    if name == "none":
        return None
    entry = _entry_name(name, signal, environ)
    if entry is None:
        protocol = _protocol(signal, environ)
        return Finding(
            PROBLEM, "Auto-config", "the OTLP protocol %r (for %s) is not one the SDK supports: its set-up fails" % (protocol, variable),
            "export OTEL_EXPORTER_OTLP_PROTOCOL=grpc or http/protobuf",
        )  # fmt: skip
    if _entry_point("opentelemetry_%s_exporter" % signal, entry):
        return None
    package = _OTLP_PACKAGES.get(entry, "the package that provides the %r exporter" % entry)
    shown = name if entry == name else "%s (entry point %s)" % (name, entry)
    if signal == "logs":  # never propose none here: that would switch PostHog off
        fix = "pip install %s, or leave it out: export OTEL_LOGS_EXPORTER=posthog" % package
    else:
        fix = "export %s=none, or pip install %s" % (variable, package)
    return Finding(
        PROBLEM, "Auto-config",
        "%s %s %s, which is not installed: opentelemetry-instrument's set-up fails and configures "
        "nothing, PostHog included" % (variable, "defaults to" if implied else "is", shown),
        fix,
    )  # fmt: skip


def _protocol(signal: str, environ: Mapping[str, str]) -> str:
    return (
        environ.get("OTEL_EXPORTER_OTLP_%s_PROTOCOL" % signal.upper())
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()


def _entry_name(name: str, signal: str, environ: Mapping[str, str]) -> Optional[str]:
    """The entry point the SDK looks up: ``otlp`` is gRPC unless a protocol says
    http/protobuf; None for a protocol the SDK refuses."""
    if name != "otlp":
        return name
    return _OTLP_PROTOCOLS.get(_protocol(signal, environ))


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
