"""HTTP for flags: ``GET`` definitions and ``POST /flags``, nothing else.

Its own small layer rather than the exporter's transport: definitions need a ``GET``
with ``If-None-Match`` and a body of megabytes (the exporter's transport keeps the
first kilobyte of an answer, which is all a capture response needs).

The ``requests.Session`` belongs to the process that made it: a forked child makes its
own on first use and leaves the parent's alone (closing it would shut the parent's
sockets). TLS verification stays on.

PostHog takes the project key of a definitions request in its URL (``?token=``; its own
SDK does the same) and ``urllib3`` logs request lines at DEBUG: a filter on its logger
shows such a token redacted (``phc_...xy``), so turning DEBUG on does not print the key.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import Mapping, Optional

import requests

from .._config import redact
from .._version import __version__

USER_AGENT = "posthog-otel/%s" % __version__


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    text: str


class HttpFailure(Exception):
    """No HTTP answer: ``kind`` is ``timeout`` or ``connection_error`` (PostHog's names)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__("%s (%s)" % (kind, detail))
        self.kind = kind


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


class FlagsHttp:
    def __init__(self) -> None:
        _guard_urllib3_log()
        self._lock = threading.Lock()
        self._session: Optional[requests.Session] = None
        self._pid = os.getpid()

    def get(self, url: str, headers: Mapping[str, str], timeout: float) -> Answer:
        return self._send("GET", url, None, headers, timeout)

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Answer:
        return self._send("POST", url, body, headers, timeout)

    def _send(self, method: str, url: str, body: Optional[bytes], headers: Mapping[str, str], timeout: float) -> Answer:
        session = self._session_here()
        try:
            reply = session.request(method, url, data=body, headers=dict(headers), timeout=timeout)
            return Answer(reply.status_code, reply.headers, reply.text)
        except requests.Timeout as error:
            raise HttpFailure("timeout", type(error).__name__) from None
        except requests.RequestException as error:
            raise HttpFailure("connection_error", type(error).__name__) from None

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None and self._pid == os.getpid():
            session.close()

    def _session_here(self) -> requests.Session:
        pid = os.getpid()
        session = self._session
        if session is not None and self._pid == pid:
            return session
        if self._pid != pid:
            self._lock = threading.Lock()  # a forked child: the parent's lock may be held by a thread now gone
        with self._lock:
            if self._session is None or self._pid != pid:
                self._session = requests.Session()
                self._session.headers["User-Agent"] = USER_AGENT
                self._pid = pid
            return self._session
