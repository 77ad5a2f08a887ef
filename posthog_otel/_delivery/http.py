"""HTTP I/O and nothing else: ``post`` and ``get``, for delivery and for feature flags alike.

One client for the whole package: the exporter's transport (``HttpTransport``, or the
object an application passes as ``transport=``) also carries flag traffic (``POST
/flags``, the definitions and remote config ``GET``s), so a proxy or mTLS transport
reaches every request.

Fork-safety lives here.  The SDK's batch processor restarts its worker in a forked child
but keeps the exporter object, so a ``requests.Session`` made in the parent would be
shared with the child (same sockets, interleaved bytes).  The session is therefore tied
to the process id that made it and rebuilt on first use in any other process (the
parent's is abandoned, never closed: closing it would shut sockets the parent still uses).
TLS verification stays on.

PostHog takes the project key of a definitions request in its URL (``?token=``; its own
SDK does the same) and ``urllib3`` logs request lines at DEBUG: a filter on its logger
shows such a token redacted (``phc_...xy``), so turning DEBUG on does not print the key.
For the same reason a failed request's exception (whose message names the URL) is not
chained to ``TransportError``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Protocol

import requests

from .._config import redact
from .._version import __version__

USER_AGENT = "posthog-otel/%s" % __version__


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    text: str


class TransportError(Exception):
    """The request did not get an HTTP answer; ``kind`` says how, in PostHog's words:
    ``timeout`` or ``connection_error`` (refused, reset, DNS, TLS...)."""

    def __init__(self, detail: str = "", kind: str = "connection_error") -> None:
        super().__init__(detail)
        self.kind = kind


#: ``post(url, body, headers, timeout) -> Response``; raises ``TransportError`` without an answer.
Post = Callable[[str, bytes, Mapping[str, str], float], Response]


class Transport(Protocol):
    """The seam under the exporter and flags: how bytes reach PostHog (tests and applications
    may pass their own). ``get`` serves flag definitions and remote config only: a transport
    without it still delivers events and asks ``/flags``."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response: ...

    def get(self, url: str, headers: Mapping[str, str], timeout: float) -> Response: ...

    def close(self) -> None: ...


class HttpTransport:
    """``requests`` underneath, one session per process."""

    def __init__(self) -> None:
        _guard_urllib3_log()
        self._lock = threading.Lock()
        self._session: Optional[requests.Session] = None
        self._pid = os.getpid()

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
        return self._send("POST", url, body, headers, timeout)

    def get(self, url: str, headers: Mapping[str, str], timeout: float) -> Response:
        return self._send("GET", url, None, headers, timeout)

    def _send(
        self, method: str, url: str, body: Optional[bytes], headers: Mapping[str, str], timeout: float
    ) -> Response:
        session = self._current_session()
        try:
            reply = session.request(method, url, data=body, headers=dict(headers), timeout=timeout)
            text = reply.text
        except requests.Timeout as error:
            raise TransportError(type(error).__name__, "timeout") from None
        except requests.RequestException as error:
            raise TransportError(type(error).__name__) from None
        return Response(reply.status_code, reply.headers, text)

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None and self._pid == os.getpid():
            session.close()

    def after_fork(self) -> None:
        """In a forked child: a lock held by a parent thread at fork time stays held forever."""
        self._lock = threading.Lock()

    def _current_session(self) -> requests.Session:
        pid = os.getpid()
        session = self._session
        if session is not None and self._pid == pid:
            return session
        if self._pid != pid:
            self.after_fork()  # a child no dispatcher told (a transport only flags use)
        with self._lock:
            if self._session is None or self._pid != pid:
                self._session = requests.Session()
                self._session.headers["User-Agent"] = USER_AGENT
                self._pid = pid
            return self._session


_TOKEN = re.compile(r"([?&]token=)([^&\s\"']+)")


class _RedactTokens(logging.Filter):
    """Shows ``token=`` values in ``urllib3``'s request lines redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) and "token=" in a for a in args):
            record.args = tuple(_TOKEN.sub(_redacted, a) if isinstance(a, str) else a for a in args)
        return True


def _redacted(found: "re.Match[str]") -> str:
    return found.group(1) + (redact(found.group(2)) or "")


_REDACT_TOKENS = _RedactTokens()


def _guard_urllib3_log() -> None:
    log = logging.getLogger("urllib3.connectionpool")
    if _REDACT_TOKENS not in log.filters:
        log.addFilter(_REDACT_TOKENS)
