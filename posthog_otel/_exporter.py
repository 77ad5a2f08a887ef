"""``PostHogLogExporter``: the SDK's batch processor hands it records, it hands PostHog events."""

from __future__ import annotations

import logging
import platform
import sys
from typing import Any, Dict, Optional, Sequence
from urllib.parse import urlsplit

from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from ._client import PostHogClient, deadline_after
from ._config import Settings, redact
from ._log import count_drop, logger, warn_limited
from ._retry import RetryPolicy
from ._schema import is_operation
from ._mapping import Defaults, Operation, to_posthog_events
from ._version import __version__

LIBRARY = "posthog-otel"


class PostHogLogExporter(LogRecordExporter):
    """Exports PostHog operation records (``event_name`` ``posthog.*``); ignores all others.

    Every argument is optional and falls back to the environment (``POSTHOG_API_KEY``,
    ``POSTHOG_HOST``, ``POSTHOG_OTEL_*``; see ``docs/configuration.md``), so the class
    works as an ``opentelemetry-instrument`` entry point (no arguments) and from
    declarative configuration (keyword arguments) alike.

    ``retry_policy`` replaces the default backoff schedule (and ``max_attempts``);
    ``transport`` replaces the HTTP layer (an object with ``post`` and ``close``).

    ``export`` returns SUCCESS only when PostHog accepted every event of the batch; it
    never raises.  A missing API key raises ``ValueError`` here, at construction.
    """

    def __init__(
        self,
        *,
        api_key: Optional[str] = None,
        host: Optional[str] = None,
        timeout: Optional[float] = None,
        max_attempts: Optional[int] = None,
        gzip: Optional[bool] = None,
        disable_geoip: Optional[bool] = None,
        historical_migration: Optional[bool] = None,
        retry_policy: Optional[RetryPolicy] = None,
        transport: Optional[Any] = None,
    ) -> None:
        settings = Settings.resolve(
            api_key=api_key,
            host=host,
            timeout=timeout,
            max_attempts=max_attempts,
            gzip=gzip,
            disable_geoip=disable_geoip,
            historical_migration=historical_migration,
        )
        if not settings.api_key:
            raise ValueError(
                "posthog_otel: no PostHog project API key; set POSTHOG_API_KEY "
                "(or pass api_key=...) to your project's key, which starts with phc_"
            )
        if settings.host.startswith("http://") and not _is_loopback(settings.host):
            logger.warning(
                "posthog_otel: POSTHOG_HOST %s is plain http; events and the project key travel unencrypted",
                settings.host,
            )
        self.settings = settings
        self._client = PostHogClient(settings, transport, retry_policy)
        self._defaults = Defaults(
            library={"$lib": LIBRARY, "$lib_version": __version__, "$is_server": True},
            system=system_properties(),
            disable_geoip=settings.disable_geoip,
        )
        self._shutdown = False

    def __repr__(self) -> str:
        return "PostHogLogExporter(host=%r, api_key=%r)" % (self.settings.host, redact(self.settings.api_key))

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        if self._shutdown:
            count_drop("exporter_shut_down", len(batch))
            warn_limited("export_after_shutdown", "posthog_otel: export called after shutdown; records dropped")
            return LogRecordExportResult.FAILURE
        try:
            return self._export(batch)
        except Exception:
            count_drop("internal_error", len(batch))
            warn_limited("export_internal", "posthog_otel: internal error while exporting", level=logging.ERROR)
            logger.debug("internal error while exporting", exc_info=True)
            return LogRecordExportResult.FAILURE

    def _export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        operations = [Operation.from_log_record(r) for r in batch if _is_posthog(r)]
        if not operations:
            return LogRecordExportResult.SUCCESS
        events, skipped = to_posthog_events(operations, self._defaults)
        for problem in skipped:
            count_drop(problem.reason)
            warn_limited("skip:" + problem.reason, "posthog_otel: record dropped: %s", problem)
        if not events:
            return LogRecordExportResult.SUCCESS if not skipped else LogRecordExportResult.FAILURE
        report = self._client.send(events, deadline_after(self.settings.timeout))
        if report.ok and not skipped:
            return LogRecordExportResult.SUCCESS
        return LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing is buffered here: each export is delivered before it returns

    def shutdown(self) -> None:
        self._shutdown = True
        self._client.shutdown()


def _is_posthog(readable: Any) -> bool:
    return is_operation(getattr(readable.log_record, "event_name", None))


def _is_loopback(host: str) -> bool:
    name = urlsplit(host).hostname or ""
    return name in ("localhost", "::1") or name.startswith("127.")


def system_properties() -> Dict[str, Any]:
    """What PostHog's SDK adds to captured events about the process (computed once)."""
    properties: Dict[str, Any] = {
        "$python_runtime": platform.python_implementation(),
        "$python_version": "%s.%s.%s" % sys.version_info[:3],
    }
    if sys.platform.startswith("linux"):
        properties["$os"] = "Linux"
        release = _os_release()
        properties["$os_version"] = release.get("VERSION_ID", "")
        if release.get("NAME"):
            properties["$os_distro"] = release["NAME"]
    elif sys.platform == "darwin":
        properties["$os"] = "Mac OS X"
        properties["$os_version"] = platform.mac_ver()[0]
    elif sys.platform.startswith("win"):
        properties["$os"] = "Windows"
        properties["$os_version"] = platform.win32_ver()[0]
    else:
        properties["$os"] = sys.platform
        properties["$os_version"] = platform.release()
    return properties


def _os_release() -> Dict[str, str]:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except OSError:
            continue
        pairs = (line.split("=", 1) for line in lines if "=" in line)
        return {k.strip(): v.strip().strip('"') for k, v in pairs}
    return {}
