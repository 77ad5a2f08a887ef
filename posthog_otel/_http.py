"""HTTP I/O and nothing else: one method, ``post``.

Fork-safety lives here.  The SDK's batch processor restarts its worker in a forked child
but keeps the exporter object, so a ``requests.Session`` made in the parent would be
shared with the child (same sockets, interleaved bytes).  The session is therefore tied
to the process id that made it and rebuilt on first use in any other process.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Protocol

import requests

from ._version import __version__

USER_AGENT = "posthog-otel/%s" % __version__


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    text: str


class TransportError(Exception):
    """The request did not get an HTTP answer (connection refused or reset, timeout...)."""


#: ``post(url, body, headers, timeout) -> Response``; raises ``TransportError`` without an answer.
Post = Callable[[str, bytes, Mapping[str, str], float], Response]

class Transport(Protocol):
    """The seam under the exporter: how bytes reach PostHog (tests may pass their own)."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response: ...

    def close(self) -> None: ...


class HttpTransport:
    """POSTs bytes with ``requests``; TLS verification stays on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: Optional[requests.Session] = None
        self._pid = 0

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
        session = self._current_session()
        try:
            reply = session.post(url, data=body, headers=dict(headers), timeout=timeout)
            text = reply.text[:1000]
        except requests.RequestException as error:
            raise TransportError(type(error).__name__) from error
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
        with self._lock:
            if self._session is None or self._pid != pid:
                # In a forked child the parent's session is abandoned, never closed: closing
                # it would shut sockets the parent still uses.
                self._session = requests.Session()
                self._session.headers["User-Agent"] = USER_AGENT
                self._pid = pid
            return self._session
