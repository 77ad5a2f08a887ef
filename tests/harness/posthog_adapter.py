"""PostHog's own Python SDK (``posthog``, the dev extra's 7.91.1) under the same harness.

The comparison for README's numbers: the same runner, the same mock and the same mapping of
the harness's settings as ``adapter.py`` (a setting is given only when the harness gives it;
capture ``options`` are the properties PostHog's SDK reads them from), with PostHog's public
``Client`` in place of posthog-otel's. ``max_retries`` is passed as is: it is PostHog's own.

``python -m tests.harness.posthog_adapter --capture-mode v0|v1 [--compression gzip|deflate|zstd]``
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from posthog import Client
from posthog.version import VERSION

from ._server import FLUSH_INTERVAL_MS, Session, empty_state, main
from .adapter import OPTION_PROPERTIES


class PosthogSession(Session):
    def __init__(self, config: Dict[str, Any], capture_mode: str, compression: str) -> None:
        options: Dict[str, Any] = {"capture_mode": capture_mode}
        if "flush_at" in config:
            options["flush_at"] = config["flush_at"]
        options["flush_interval"] = config.get("flush_interval_ms", FLUSH_INTERVAL_MS) / 1000.0
        if "enable_compression" in config:
            options["gzip"] = bool(config["enable_compression"])
            if capture_mode == "v1":
                options["capture_compression"] = compression if config["enable_compression"] else "none"
        for name in ("disable_geoip", "historical_migration", "max_retries"):
            if name in config:
                options[name] = config[name]
        self.client = Client(config["api_key"], host=config["host"], **options)
        self._captured = 0

    def capture(self, request: Dict[str, Any]) -> Optional[str]:
        return self._capture(self.client.capture, request)

    def capture_ai(self, request: Dict[str, Any]) -> Optional[str]:
        return self._capture(self.client.capture_ai, request, uuid=request.get("uuid"))

    def _capture(self, method: Any, request: Dict[str, Any], **more: Any) -> Optional[str]:
        properties = dict(request.get("properties") or {})
        for option, value in (request.get("options") or {}).items():
            properties[OPTION_PROPERTIES[option]] = value
        uuid = method(request["event"], distinct_id=request["distinct_id"], properties=properties,
                      timestamp=request.get("timestamp"), **more)  # fmt: skip
        self._captured += uuid is not None
        return uuid

    def flush(self) -> int:
        self.client.flush()
        return self._captured

    def get_feature_flag(self, request: Dict[str, Any]) -> Any:
        given = {name: request[name] for name in ("person_properties", "groups", "group_properties", "disable_geoip")
                 if name in request}  # fmt: skip
        return self.client.get_feature_flag(request["key"], request["distinct_id"], **given)

    def state(self) -> Dict[str, Any]:
        return empty_state(self._captured, self._captured)

    def close(self) -> None:
        self.client.shutdown()


def _ai_lane(capture_mode: str) -> List[str]:
    return ["capture_ai_v0"] if capture_mode == "v0" else []  # PostHog's AI lane, which posthog-otel has not


if __name__ == "__main__":
    main("posthog-python", VERSION, PosthogSession, _ai_lane)
