"""posthog-otel under PostHog's SDK compliance harness.

``python -m tests.harness.adapter --capture-mode v0|v1 [--compression gzip|deflate|zstd]``
serves the harness's adapter API (``_server``) and answers each call with posthog-otel's
public API only: ``Posthog(...)`` with PostHog's option names, ``capture``, ``flush``,
``get_feature_flag``, ``stats``, ``shutdown``. It has no retries, batching or payload
shaping of its own; what reaches the mock is what posthog-otel sends.

How the harness's settings map onto posthog-otel's (README, "Coming from PostHog's SDK"):
- ``flush_at``, ``disable_geoip``, ``historical_migration``: PostHog's options of the same
  meaning, given only when the harness gives them (else our defaults).
- ``flush_interval_ms``: PostHog's ``flush_interval``; when the harness gives none, a long one
  (``_server.FLUSH_INTERVAL_MS``, for both SDKs: every test flushes, and a timer adds only luck).
- ``enable_compression``: ``gzip`` (``/batch/``), ``capture_compression`` (Capture V1: the codec
  of ``--compression``, one per adapter process, as the harness has one flag for all codecs).
- ``max_retries``: PostHog's ``max_retries`` gives up after that many retries. posthog-otel
  gives up only with its spool off (with it on, what PostHog does not take waits on disk and
  is sent when it answers again), so the harness's ``max_retries`` is ``max_retries`` with
  ``spool=False``; every other test runs with the spool on, our default.
- a capture's ``options`` (Capture V1 event options) are the properties PostHog's SDK reads
  them from (``$cookieless_mode``, ``$ignore_sent_at``, ``$process_person_profile``,
  ``$product_tour_id``).
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any, Dict, Optional

import posthog_otel
from posthog_otel import Posthog

from ._server import FLUSH_INTERVAL_MS, Session, empty_state, main

#: The harness's capture ``options`` and the properties posthog-otel (as PostHog's SDK) reads them from.
OPTION_PROPERTIES = {
    "cookieless_mode": "$cookieless_mode",
    "disable_skew_correction": "$ignore_sent_at",
    "process_person_profile": "$process_person_profile",
    "product_tour_id": "$product_tour_id",
}


class OtelSession(Session):
    def __init__(self, config: Dict[str, Any], capture_mode: str, compression: str) -> None:
        self._spool = tempfile.mkdtemp(prefix="posthog-otel-harness-")
        options: Dict[str, Any] = {"capture_mode": capture_mode, "spool_dir": self._spool}
        if "flush_at" in config:
            options["flush_at"] = config["flush_at"]
        options["flush_interval"] = config.get("flush_interval_ms", FLUSH_INTERVAL_MS) / 1000.0
        if "enable_compression" in config:
            if capture_mode == "v1" and config["enable_compression"]:
                options["capture_compression"] = compression
            else:
                options["gzip"] = bool(config["enable_compression"])
        for name in ("disable_geoip", "historical_migration"):
            if name in config:
                options[name] = config[name]
        if "max_retries" in config:
            options.update(max_retries=config["max_retries"], spool=False)
        self.client = Posthog(config["api_key"], host=config["host"], **options)
        self._captured = 0

    def capture(self, request: Dict[str, Any]) -> Optional[str]:
        properties = dict(request.get("properties") or {})
        for option, value in (request.get("options") or {}).items():
            properties[OPTION_PROPERTIES[option]] = value
        uuid = self.client.capture(
            request["distinct_id"], request["event"], properties, timestamp=request.get("timestamp")
        )
        self._captured += uuid is not None
        return uuid

    def flush(self) -> int:
        self.client.flush(timeout_seconds=10)
        return int(self.client.stats().get("exported", 0))

    def get_feature_flag(self, request: Dict[str, Any]) -> Any:
        # No personal key here, so no local evaluation: every read asks /flags (force_remote).
        given = {name: request[name] for name in ("person_properties", "groups", "group_properties", "disable_geoip")
                 if name in request}  # fmt: skip
        return self.client.get_feature_flag(request["key"], request["distinct_id"], **given)

    def state(self) -> Dict[str, Any]:
        stats = self.client.stats()
        return empty_state(self._captured, int(stats.get("exported", 0)), int(stats.get("retried", 0)))

    def close(self) -> None:
        try:
            self.client.shutdown()
        finally:
            shutil.rmtree(self._spool, ignore_errors=True)


if __name__ == "__main__":
    main("posthog-otel", posthog_otel.__version__, OtelSession)
