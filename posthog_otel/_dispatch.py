"""Everything after the mapping, shared by the log and span exporters: deliver events,
spool what PostHog does not take, drain the spool, count what happens."""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence
from urllib.parse import urlsplit

from ._client import PostHogClient, deadline_after
from ._config import Settings, redact
from ._drainer import Drained, Drainer
from ._log import count_drop, logger, warn_limited
from ._mapping import Defaults, Operation, to_posthog_events
from ._retry import RetryPolicy
from ._spool import open_spool
from ._stats import Stats, register_metrics
from ._version import __version__

LIBRARY = "posthog-otel"


def exporter_settings(**arguments: Any) -> Settings:
    """Resolve an exporter's settings; a missing key is an error naming ``POSTHOG_API_KEY``."""
    resolved = Settings.resolve(**arguments)
    if not resolved.api_key:
        raise ValueError(
            "posthog_otel: no PostHog project API key; set POSTHOG_API_KEY "
            "(or pass api_key=...) to your project's key, which starts with phc_"
        )
    if resolved.host.startswith("http://") and not _is_loopback(resolved.host):
        logger.warning(
            "posthog_otel: POSTHOG_HOST %s is plain http; events and the project key travel unencrypted",
            resolved.host,
        )
    return resolved


class Dispatcher:
    """``deliver(operations)`` maps and sends, spools what does not go through; never raises."""

    def __init__(self, resolved: Settings, retry_policy: Optional[RetryPolicy] = None, transport: Optional[Any] = None):
        self.settings = resolved
        self._client = PostHogClient(resolved, transport, retry_policy)
        self._defaults = Defaults(
            library={"$lib": LIBRARY, "$lib_version": __version__, "$is_server": True},
            system=system_properties(),
            disable_geoip=resolved.disable_geoip,
        )
        self._spool = open_spool(spool_directory(resolved), resolved.spool_max_bytes, resolved.spool_max_age) if resolved.spool else None
        self._stats = Stats(self._spool)
        self._drainer = Drainer(self._spool, self._client, resolved.timeout, self._stats) if self._spool else None
        self._shutdown = False
        register_metrics(self._stats)
        if resolved.handle_sigterm:
            _exit_on_sigterm()
        if self._drainer is not None and self._drainer.spool.pending():
            self._drainer.poke()  # batches left by an earlier process: send them now

    def __repr__(self) -> str:
        return "Dispatcher(host=%r, api_key=%r)" % (self.settings.host, redact(self.settings.api_key))

    def stats(self) -> Dict[str, Any]:
        """Events exported, request retries, events spooled and drained, drops by reason, spool depth."""
        return self._stats.snapshot()

    def deliver(self, operations: Sequence[Operation]) -> bool:
        """Map and send; True only when PostHog accepted every event."""
        if self._shutdown:
            count_drop("exporter_shut_down", len(operations))
            warn_limited("export_after_shutdown", "posthog_otel: export called after shutdown; records dropped")
            return False
        try:
            events, skipped = to_posthog_events(operations, self._defaults)
            for problem in skipped:
                count_drop(problem.reason)
                warn_limited("skip:" + problem.reason, "posthog_otel: record dropped: %s", problem)
            return (self._deliver(events) if events else True) and not skipped
        except Exception:
            count_drop("internal_error", len(operations))
            warn_limited("export_internal", "posthog_otel: internal error while exporting", level=logging.ERROR)
            logger.debug("internal error while exporting", exc_info=True)
            return False

    def _deliver(self, events: List[Dict[str, Any]]) -> bool:
        if self._spool is not None and self._spool.pending():
            self._to_spool(events, "earlier events are still waiting in the spool")
            return False
        budget = min(self.settings.timeout, self.settings.spool_after) if self._spool else self.settings.timeout
        report = self._client.send(events, deadline_after(budget))
        self._stats.add("exported", report.delivered)
        self._stats.add("retried", report.retries)
        if report.unsent:
            if self._spool is not None:
                self._to_spool(report.unsent, report.detail)
            else:
                self._drop_unsent(report)
        return report.ok

    def _to_spool(self, events: List[Dict[str, Any]], why: str) -> None:
        assert self._spool is not None and self._drainer is not None
        try:
            self._spool.append(events)
        except OSError as error:
            count_drop("spool_write_failed", len(events))
            logger.error("posthog_otel: could not write %d event(s) to the spool (%s); dropped", len(events), error)
            return
        self._stats.add("spooled", len(events))
        warn_limited(
            "spooled",
            "posthog_otel: PostHog did not take %d event(s) (%s); kept in the spool %s and sent in order "
            "when it answers again",
            len(events), why, self._spool,
        )  # fmt: skip
        self._drainer.poke()

    def _drop_unsent(self, report: Any) -> None:
        reason = "unauthorized" if report.unauthorized else "delivery_failed"
        count_drop(reason, len(report.unsent))
        warn_limited(  # a refused key was already reported, loudly, by the client
            "gave_up:" + reason,
            "posthog_otel: could not deliver %d event(s) to %s (%s); dropped because the spool is off",
            len(report.unsent), self.settings.host, report.detail,
            level=logging.WARNING if report.unauthorized else logging.ERROR,
        )  # fmt: skip

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Send what the spool holds, within the timeout; True when nothing is left waiting."""
        if self._drainer is None or not self._drainer.spool.pending() or self._shutdown:
            return True
        return self._drainer.drain(deadline_after(timeout_millis / 1000)) is Drained.EMPTY

    def shutdown(self, timeout_millis: float = 5000) -> None:
        """Stop: one last try to empty the spool (briefly), then close. Spooled data stays on disk."""
        if self._shutdown:
            return
        self._shutdown = True
        if self._drainer is not None:
            self._drainer.stop()
            if self._drainer.spool.pending():
                self._drainer.drain(deadline_after(min(2.0, max(timeout_millis, 0) / 1000)))
        self._client.shutdown()
        self._summarise()

    def _summarise(self) -> None:
        stats = self._stats.snapshot()
        dropped = stats["dropped"]
        if dropped:
            logger.warning(
                "posthog_otel: %d event(s) exported; dropped: %s",
                stats["exported"], ", ".join("%s=%d" % kv for kv in sorted(dropped.items())),
            )  # fmt: skip
        if stats["spool_batches"]:
            logger.warning(
                "posthog_otel: %d batch(es) wait in the spool %s; the next process with the same key and host "
                "sends them", stats["spool_batches"], self._spool,
            )  # fmt: skip


def spool_directory(settings: Settings) -> Path:
    """``spool_dir`` or the user's state directory, then one folder per (key, host): a hash, never the key."""
    if settings.spool_dir:
        base = Path(settings.spool_dir)
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support" / "posthog-otel" / "spool"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home()) / "posthog-otel" / "spool"
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "posthog-otel" / "spool"
    digest = hashlib.sha256(("%s\0%s" % (settings.host, settings.api_key)).encode("utf-8")).hexdigest()[:16]
    return base / digest


def _exit_on_sigterm() -> None:
    """With no SIGTERM handler, the process dies without running ``atexit``, and the SDK's
    queue with it.  Exiting through ``sys.exit`` instead lets the providers flush (or spool)
    what is queued.  An application's own handler is never replaced."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _sigterm)
    except (ValueError, OSError, AttributeError):  # no signals here (some embedded interpreters)
        pass


def _sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


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
