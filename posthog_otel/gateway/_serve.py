"""``posthog-otel gateway``: the application under gunicorn, with settings that suit it.

- **gthread workers** (``_worker.Worker``): a pool of threads per process serves requests;
  connections wait in the worker's poller while idle and while their request head arrives
  (a slow head holds no thread), and a body has ``read_timeout`` to arrive; decoding is one
  request at a time per worker anyway (``_app``: order, and the GIL).
- **preloaded**: the application is made once in the master, so a bad setting stops the
  command before any worker starts; each worker opens its own projects on first use.
- **SIGTERM** (or SIGINT): gunicorn closes the listening socket, workers finish the
  requests they are reading, then ``worker_exit`` closes the gateway: what each project
  holds is delivered while PostHog answers (``close_budget``), the rest spooled for the
  next start. ``graceful_timeout`` leaves room for both before gunicorn would SIGKILL.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any, Callable, Dict, TextIO

from .._command import CommandError
from .._config import Settings, redact
from ._app import Gateway
from ._settings import GatewaySettings

#: Seconds an idle kept-alive connection stays open (OTLP clients reuse theirs).
KEEPALIVE = 15


def run(args: argparse.Namespace, out: TextIO) -> int:
    """``posthog-otel gateway``: settings from the command line and the environment, the
    open-relay check, then gunicorn until SIGTERM or SIGINT."""
    from . import create_app

    try:
        settings = GatewaySettings.resolve(
            bind=args.bind, workers=args.workers, threads=args.threads, allowed_keys=args.allow_key or None
        )
    except ValueError as error:
        raise CommandError(str(error).replace("posthog-otel gateway: ", "")) from None
    delivery = Settings.resolve()
    check(settings, delivery)
    try:
        gateway = create_app(settings, delivery)
    except ImportError as error:
        raise CommandError(str(error)) from None
    return serve(settings, delivery, gateway, out)


def check(settings: GatewaySettings, delivery: Settings) -> None:
    """Refuse to be an open relay: a non-loopback address needs an explicit allow-list
    (``POSTHOG_API_KEY`` alone is not one: it is the key of requests that bring none)."""
    if not settings.loopback and not settings.allowed_keys:
        raise CommandError(
            "bound to %s, which is not a loopback address, with no allow-list: set POSTHOG_OTEL_GATEWAY_KEYS "
            "(or --allow-key) to the project keys remote clients may send (POSTHOG_API_KEY alone is not enough: "
            "remote clients must send their key)" % settings.bind[0]
        )


def options(settings: GatewaySettings, gateway: Gateway, ready: Callable[[Any], None]) -> Dict[str, Any]:
    host, port = settings.bind
    return {
        "bind": "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port),
        "workers": settings.worker_count,
        "worker_class": "posthog_otel.gateway.Worker",  # gthread, with heads read before a thread is given
        "threads": settings.threads,
        "worker_connections": settings.max_connections,
        "keepalive": KEEPALIVE,
        "timeout": 30,
        "graceful_timeout": int(settings.read_timeout + settings.close_budget) + 10,
        "preload_app": True,
        "proc_name": "posthog-otel-gateway",
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "when_ready": lambda arbiter: ready(arbiter),
        "post_worker_init": lambda worker: gateway.start(),
        "worker_exit": lambda arbiter, worker: gateway.close(),
    }


def describe(settings: GatewaySettings, delivery: Settings) -> str:
    if settings.allowed_keys or delivery.api_key:
        keys = sorted(
            redact(k) or "" for k in settings.allowed_keys | ({delivery.api_key} if delivery.api_key else set())
        )
        access = "keys on its allow-list only: %s" % ", ".join(keys)
    else:
        access = "any project key, from this machine only (no allow-list)"
    default = ("POSTHOG_API_KEY %s (from this machine only)" % redact(delivery.api_key) if delivery.api_key
               else "none (clients send one)")  # fmt: skip
    return "  accepts: %s\n  key of requests without one: %s\n  delivers to: %s (spool: %s)\n" % (
        access,
        default,
        delivery.host,
        "on" if delivery.spool else "off",
    )


def serve(settings: GatewaySettings, delivery: Settings, gateway: Gateway, out: TextIO) -> int:
    try:
        from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
    except ImportError:
        raise CommandError("needs gunicorn (Linux or macOS): pip install 'posthog-otel[gateway]'") from None
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s [%(process)d] %(levelname)s %(message)s")

    def ready(arbiter: Any) -> None:
        for listener in arbiter.LISTENERS:
            out.write("posthog-otel gateway listening on %s/v1/logs (%d workers)\n" % (listener, settings.worker_count))
        out.write(describe(settings, delivery))
        out.flush()

    class Server(BaseApplication):
        def load_config(self) -> None:
            for name, value in options(settings, gateway, ready).items():
                self.cfg.set(name, value)

        def load(self) -> Gateway:
            return gateway

    Server().run()
    return 0
