"""Flags' requests (``GET`` definitions and remote config, ``POST /flags``) over the package's
one transport (``posthog_otel._delivery.http``): the exporter's, so a ``transport=`` an application
passes (a proxy, mTLS) carries flag traffic too.

What this adds is what flags need of any transport: every way a request can fail is an
``HttpFailure`` whose ``kind`` is PostHog's ``$feature_flag_error`` name, including a
transport of the application's that raises something else or has no ``get`` (said once,
never raised into the flag call).
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping, Optional

from .._delivery.http import HttpTransport, Response, Transport, TransportError
from .._log import warn_limited


class HttpFailure(Exception):
    """No HTTP answer: ``kind`` is ``timeout`` or ``connection_error`` (PostHog's names)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__("%s (%s)" % (kind, detail))
        self.kind = kind


class FlagsHttp:
    """The transport as flags use it; a new ``HttpTransport`` when none is given."""

    def __init__(self, transport: Optional[Transport] = None) -> None:
        self.transport: Transport = transport if transport is not None else HttpTransport()

    def get(self, url: str, headers: Mapping[str, str], timeout: float) -> Response:
        get = getattr(self.transport, "get", None)
        if get is None:
            warn_limited("flag:transport_get", "posthog_otel: the transport passed as transport= has no get(url, "
                         "headers, timeout): flag definitions and remote config cannot be fetched through it",
                         level=logging.ERROR)  # fmt: skip
            raise HttpFailure("connection_error", "the transport has no get()")
        return self._call("GET", lambda: get(url, headers, timeout))

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
        return self._call("POST", lambda: self.transport.post(url, body, headers, timeout))

    def _call(self, method: str, request: Callable[[], Response]) -> Response:
        try:
            return request()
        except TransportError as error:
            raise HttpFailure(error.kind, str(error) or type(error).__name__) from None
        except Exception as error:  # a transport of the application's that raises anything else
            warn_limited("flag:transport_raised:%s" % type(error).__name__, "posthog_otel: the transport raised %s "
                         "on a flags %s; taken as no answer", type(error).__name__, method,
                         level=logging.ERROR)  # fmt: skip
            raise HttpFailure("connection_error", type(error).__name__) from None
