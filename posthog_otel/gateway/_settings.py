"""The gateway's own settings, declared once each, as the exporter's are in ``_config``.

Delivery settings (``POSTHOG_HOST``, the spool, timeouts...) are the exporter's, read by
``posthog_otel._config.Settings``; ``POSTHOG_API_KEY`` there is the key of requests that
bring none. What follows is what only a server needs. Precedence is argument (the
command line) > environment > default; a bad value is an error naming the setting.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from typing import Any, Callable, FrozenSet, Mapping, Optional, Tuple

from .._config import parse_count, parse_seconds, redact, setting

MiB = 1024 * 1024

#: What a project key may look like: PostHog's are ``phc_`` and 40-odd letters and digits.
_KEY = re.compile(r"[A-Za-z0-9_\-]{8,200}")


def parse_bind(text: Any) -> Tuple[str, int]:
    """``HOST:PORT`` (``[::1]:4318`` for IPv6) or ``HOST`` alone (port 4318)."""
    value = str(text).strip()
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?", value)
    if not match:
        raise ValueError("expected HOST:PORT, like 127.0.0.1:4318")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4) or 4318)
    if not 0 <= port <= 65535:
        raise ValueError("%d is not a port (0-65535, 0 for a free one)" % port)
    return host, port


def parse_keys(text: Any) -> FrozenSet[str]:
    """Project keys separated by commas or white space."""
    items = text if isinstance(text, (list, tuple, set, frozenset)) else re.split(r"[\s,]+", str(text))
    keys = frozenset(str(item).strip() for item in items if str(item).strip())
    for key in keys:
        problem = key_problem(key)
        if problem:
            raise ValueError("%s: %s" % (redact(key), problem))
    return keys


def parse_fraction(text: Any) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError("expected a fraction above 0 and at most 1")
    return value


def key_problem(key: str) -> Optional[str]:
    """Why ``key`` cannot be a project key, or None."""
    if key.startswith(("phx_", "phs_")):
        return "a personal or secret API key is not a project key (phc_...)"
    if not _KEY.fullmatch(key):
        return "not a project API key (phc_ followed by letters and digits)"
    return None


def is_loopback_address(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_workers() -> int:
    """One worker per core this process may run on: the gateway's work is CPU."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class GatewaySettings:
    """Resolved gateway settings.  ``repr`` never shows a key."""

    bind: Tuple[str, int] = setting(
        ("127.0.0.1", 4318),
        "POSTHOG_OTEL_GATEWAY_BIND",
        parse=parse_bind,
        doc="Address to listen on (`HOST:PORT`); OTLP/HTTP's port by default, loopback only. "
        "Any other address needs an allow-list.",
    )
    allowed_keys: FrozenSet[str] = setting(
        frozenset(),
        "POSTHOG_OTEL_GATEWAY_KEYS",
        parse=parse_keys,
        doc="Project keys the gateway accepts (commas or spaces between them); `POSTHOG_API_KEY` is always "
        "accepted. Empty: any key, from this machine's own addresses only.",
    )
    workers: int = setting(
        None,
        "POSTHOG_OTEL_GATEWAY_WORKERS",
        parse=parse_count,
        doc="Worker processes (`posthog-otel gateway`); one per core by default.",
    )
    threads: int = setting(
        4,
        "POSTHOG_OTEL_GATEWAY_THREADS",
        parse=parse_count,
        doc="Requests each worker reads at once (decoding is one at a time per worker, in arrival order).",
    )
    max_connections: int = setting(
        256,
        "POSTHOG_OTEL_GATEWAY_MAX_CONNECTIONS",
        parse=parse_count,
        doc="Open connections per worker, kept-alive ones included.",
    )
    max_body_bytes: int = setting(
        16 * MiB,
        "POSTHOG_OTEL_GATEWAY_MAX_BODY_BYTES",
        parse=parse_count,
        doc="Largest request body as sent (compressed or not); larger is answered 413.",
    )
    max_inflated_bytes: int = setting(
        16 * MiB,
        "POSTHOG_OTEL_GATEWAY_MAX_INFLATED_BYTES",
        parse=parse_count,
        doc="Largest request body after gzip/deflate decoding; larger is answered 413.",
    )
    read_timeout: float = setting(
        10.0,
        "POSTHOG_OTEL_GATEWAY_READ_TIMEOUT",
        parse=parse_seconds,
        doc="Seconds a request body may take to arrive; then it is answered 408 and the connection closed.",
    )
    head_timeout: float = setting(
        5.0,
        "POSTHOG_OTEL_GATEWAY_HEAD_TIMEOUT",
        parse=parse_seconds,
        doc="Seconds a request head (request line and headers, at most 64 KiB) may take to arrive, from the "
        "connection (or the next request's first byte); then it is answered 408 and closed. Heads are read "
        "without holding a thread (`posthog_otel.gateway.Worker`).",
    )
    max_objects: int = setting(
        200_000,
        "POSTHOG_OTEL_GATEWAY_MAX_OBJECTS",
        parse=parse_count,
        doc="OTLP objects one request may decode to (resource and scope logs, records, attributes, array and "
        "map values; in JSON every `{` and `[`); more is answered 413.",
    )
    decode_timeout: float = setting(
        1.0,
        "POSTHOG_OTEL_GATEWAY_DECODE_TIMEOUT",
        parse=parse_seconds,
        doc="Seconds decoding one request may take (one request decodes at a time per worker); then it is "
        "answered 503 with `Retry-After`.",
    )
    high_water: float = setting(
        0.8,
        "POSTHOG_OTEL_GATEWAY_HIGH_WATER",
        parse=parse_fraction,
        doc="Fraction of the spool (`POSTHOG_OTEL_SPOOL_MAX_BYTES`), or of memory when the spool is off, "
        "past which requests are answered 503 with `Retry-After`.",
    )
    retry_after: int = setting(
        5,
        "POSTHOG_OTEL_GATEWAY_RETRY_AFTER",
        parse=parse_count,
        doc="Seconds a client is asked to wait (`Retry-After`) while the gateway pushes back.",
    )
    max_projects: int = setting(
        64,
        "POSTHOG_OTEL_GATEWAY_MAX_PROJECTS",
        parse=parse_count,
        doc="Project keys one worker serves at once (each has its own delivery threads and spool). When all "
        "are taken, a new key takes the slot of a key PostHog has not accepted yet, least recently used "
        "first; with none, it is answered 503 with `Retry-After`.",
    )
    project_idle: float = setting(
        600.0,
        "POSTHOG_OTEL_GATEWAY_PROJECT_IDLE",
        parse=parse_seconds,
        doc="Seconds without a request after which a project's delivery is closed and its slot freed (what it "
        "holds is delivered or spooled; keys on the allow-list and `POSTHOG_API_KEY` stay open).",
    )
    close_budget: float = setting(
        5.0,
        "POSTHOG_OTEL_GATEWAY_CLOSE_BUDGET",
        parse=parse_seconds,
        doc="Seconds a stopping worker spends delivering what it holds while PostHog answers; the rest is "
        "spooled for the next start.",
    )

    def __repr__(self) -> str:
        shown = ", ".join(
            "%s=%r" % (f.name, sorted(redact(k) or "" for k in value) if f.name == "allowed_keys" else value)
            for f in dataclasses.fields(self)
            for value in (getattr(self, f.name),)
        )
        return "GatewaySettings(%s)" % shown

    @property
    def loopback(self) -> bool:
        return is_loopback_address(self.bind[0])

    @property
    def worker_count(self) -> int:
        return self.workers or default_workers()

    @classmethod
    def resolve(cls, environ: Optional[Mapping[str, str]] = None, **arguments: Any) -> "GatewaySettings":
        """From keyword arguments (None = not given), the environment, defaults; a bad value
        raises ``ValueError`` naming the argument or the variable."""
        environ = os.environ if environ is None else environ
        values = {}
        for spec in dataclasses.fields(cls):
            parse: Callable[[Any], Any] = spec.metadata["parse"]
            given = arguments.pop(spec.name, None)
            (variable,) = spec.metadata["env"]
            source, text = (
                ("--" + spec.name.replace("_", "-"), given) if given is not None else (variable, environ.get(variable))
            )
            if text is None or isinstance(text, str) and not text.strip():
                continue
            try:
                values[spec.name] = parse(text)
            except (TypeError, ValueError) as error:
                shown = "<redacted>" if spec.name == "allowed_keys" else repr(text)
                raise ValueError("posthog-otel gateway: invalid %s=%s: %s" % (source, shown, error)) from None
        if arguments:
            raise TypeError("unknown gateway setting(s): %s" % ", ".join(sorted(arguments)))
        return cls(**values)

    @classmethod
    def table(cls) -> Tuple[Tuple[str, Tuple[str, ...], Any, str], ...]:
        return tuple((f.name, f.metadata["env"], f.default, f.metadata["doc"]) for f in dataclasses.fields(cls))
