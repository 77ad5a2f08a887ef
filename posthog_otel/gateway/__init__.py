"""``posthog-otel gateway``: PostHog persons and groups from any OpenTelemetry SDK.

An OTLP/HTTP logs receiver (``POST /v1/logs``, protobuf or JSON, gzip) that turns records
following ``docs/schema.md`` into PostHog events through the exporter's own mapping,
delivery and spool. Run it with the command (gunicorn, several workers)::

    posthog-otel gateway --workers 4

or give the WSGI application to a server of your choice (with this worker class, slow
request heads hold no thread: ``docs/gateway.md``)::

    gunicorn -k posthog_otel.gateway.Worker --threads 4 'posthog_otel.gateway:app'
    gunicorn -k posthog_otel.gateway.Worker 'posthog_otel.gateway:create_app()'

``app`` is built from the environment on first access (``POSTHOG_API_KEY``,
``POSTHOG_HOST``, ``POSTHOG_OTEL_GATEWAY_*``: ``docs/gateway.md``). This package needs the
``posthog-otel[gateway]`` extra (opentelemetry-proto, gunicorn); ``import posthog_otel``
never imports it.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from .._config import Settings
from ._app import Gateway
from ._settings import GatewaySettings

__all__ = ["Gateway", "GatewaySettings", "create_app"]


def create_app(
    settings: Optional[GatewaySettings] = None,
    delivery: Optional[Settings] = None,
    transport: Any = None,
    retry_policy: Any = None,
) -> Gateway:
    """A gateway from explicit settings, or from the environment; ``ValueError`` naming the
    setting when they do not make a usable gateway."""
    _require_extras()
    settings = settings or GatewaySettings.resolve()
    delivery = delivery or Settings.resolve()
    return Gateway(settings, delivery, transport, retry_policy)


_app: Optional[Gateway] = None
_app_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    """``posthog_otel.gateway:app``: made from the environment on first access;
    ``posthog_otel.gateway.Worker``: the gunicorn worker class (``-k``), imported on use."""
    global _app
    if name == "Worker":
        from ._worker import Worker

        return Worker
    if name != "app":
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    with _app_lock:
        if _app is None:
            _app = create_app()
        return _app


def _require_extras() -> None:
    try:
        import google.protobuf  # noqa: F401
        import opentelemetry.proto.collector.logs.v1.logs_service_pb2  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "posthog-otel gateway needs the gateway extra: pip install 'posthog-otel[gateway]' (%s)" % error
        ) from None
