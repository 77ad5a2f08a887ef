"""Keeping flag definitions fresh: ``GET {host}/flags/definitions`` on a daemon thread.

Every ``interval`` seconds (the first time at once) it asks with the personal API key
as a bearer token and the last ``ETag`` as ``If-None-Match``:

- 200: the new definitions replace the old ones (checked and compiled first; an
  unusable body is a failed poll);
- 304: nothing changed, what is loaded stays;
- 401: the key is refused: definitions are cleared (every flag is then asked of
  ``/flags``) and one error says so, naming the key only in its redacted form;
- 402: the flags quota is used up: definitions are cleared, as PostHog's SDK does;
- anything else (5xx, timeouts, a quota-limited 200): the last good definitions stay.

Definitions are one immutable object swapped whole, so an evaluation reads one
consistent set without a lock. After ``fork()`` the child keeps what was loaded and
answers from it; its poller thread (threads do not survive a fork) is started again
on its first use.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from typing import Optional
from urllib.parse import quote

from .. import _config, _state
from .._config import redact
from .._log import logger, warn_limited
from .definitions import CLEARED, Definitions
from .http import FlagsHttp, HttpFailure

DEFINITIONS_TIMEOUT = 10.0  # PostHog's SDK allows the same for this (large) answer


class DefinitionsPoller:
    def __init__(
        self, host: str, project_key: str, personal_key: str, interval: float, http: Optional[FlagsHttp] = None
    ) -> None:
        self.host = host
        self.interval = interval
        self._project_key = project_key
        self._personal_key = personal_key
        self._http = http or FlagsHttp()
        #: None until the first answer; CLEARED after the key or the quota was refused.
        self.definitions: Optional[Definitions] = None
        self.etag: Optional[str] = None
        self.polls = 0
        self._last_poll: Optional[float] = None  # monotonic time of the last poll (kept across a fork)
        self._refused: Optional[int] = None  # the status of the refusal being reported, if any
        self._new_process_state()
        _live.add(self)

    def __repr__(self) -> str:
        return "DefinitionsPoller(host=%r, personal_key=%r)" % (self.host, redact(self._personal_key))

    def _new_process_state(self) -> None:
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._first_answer = threading.Event()
        self._wake = threading.Event()  # a caller wants a poll now (load_feature_flags)
        self._polled = threading.Condition()
        self._completed = 0  # polls finished in this process
        self._in_flight = False

    # --- running ------------------------------------------------------------------------

    def ensure_running(self) -> None:
        """Start the thread if this process has none (first use, or first use after a fork)."""
        if self._thread is not None or self._stop.is_set():
            return
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="posthog-otel-flags", daemon=True)
                self._thread.start()

    def wait_for_first_answer(self, timeout: float) -> bool:
        """Wait until the first poll has finished (loaded or failed); True if it has."""
        return self._first_answer.wait(timeout)

    @property
    def answered(self) -> bool:
        return self._first_answer.is_set()

    def stop(self) -> None:
        """Stop polling (the thread ends at its next wake-up); what is loaded stays usable."""
        self._stop.set()
        self._wake.set()

    def poll_soon(self, timeout: float) -> bool:
        """Have the poller's thread poll now and wait for that poll, at most ``timeout`` seconds;
        True if it finished in time. The caller never makes the request itself, so a PostHog that
        does not answer costs it ``timeout``, not the request's own (10 s); the poll goes on and
        its answer is used when it comes. A poll already under way counts."""
        self.ensure_running()
        with self._polled:
            wanted = self._completed + 1
            if not self._in_flight and self._last_poll is not None:  # else the thread is about to poll
                self._wake.set()
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._polled:
            while self._completed < wanted:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return False
                self._polled.wait(left)
        return True

    def _run(self) -> None:
        """Poll when due: at once the first time, then every ``interval`` (a forked child keeps the schedule)."""
        from .._sigterm import leave_signals_to_the_main_thread

        leave_signals_to_the_main_thread()
        stop = self._stop
        wake = self._wake
        while not stop.is_set():
            last = self._last_poll
            due = 0.0 if last is None else last + self.interval - time.monotonic()
            if due <= 0 or wake.is_set():
                wake.clear()
                self.poll()
                due = self.interval
            wake.wait(due)

    # --- one poll -----------------------------------------------------------------------

    def poll(self) -> None:
        """Ask once; never raises (a failure keeps what is loaded)."""
        with self._polled:
            self._in_flight = True
        self.polls += 1
        self._last_poll = time.monotonic()
        try:
            self._poll()
        except Exception:
            logger.exception("posthog_otel: internal error while loading flag definitions")
        finally:
            self._first_answer.set()
            with self._polled:
                self._completed += 1
                self._in_flight = False
                self._polled.notify_all()

    def _poll(self) -> None:
        host, project_key = self.host, self._project_key
        redirect = _config.REDIRECT
        if redirect is not None and host != redirect["host"]:  # the test fixture's local PostHog, while it runs
            host, project_key = redirect["host"], redirect["api_key"]
        url = "%s/flags/definitions?token=%s&send_cohorts" % (host, quote(project_key, safe=""))
        headers = {"Authorization": "Bearer %s" % self._personal_key}
        if self.etag:
            headers["If-None-Match"] = self.etag
        try:
            answer = self._http.get(url, headers, DEFINITIONS_TIMEOUT)
        except HttpFailure as failure:
            return self._failed("could not reach %s (%s)" % (self.host, failure.kind))
        if answer.status == 304:
            self.etag = answer.headers.get("ETag") or self.etag
            self._refused = None
            return None
        if answer.status in (401, 402):
            return self._refuse(answer.status)
        if answer.status != 200:
            return self._failed("HTTP %d from %s" % (answer.status, self.host))
        try:
            body = json.loads(answer.text)
            if isinstance(body, dict) and "feature_flags" in (body.get("quotaLimited") or ()):
                return self._failed("PostHog reports the feature flags quota as used up")
            definitions = Definitions.from_response(body)
        except ValueError as problem:
            return self._failed("an unusable answer from %s (%s)" % (self.host, problem))
        self.definitions = definitions
        self.etag = answer.headers.get("ETag")
        self._refused = None
        logger.debug("posthog_otel: loaded %d flag definitions", len(definitions.flags))
        if definitions.skipped:
            warn_limited("flags:unreadable", "posthog_otel: %d flag definition(s) from %s could not be read and are "
                         "asked of PostHog instead; the other %d are evaluated locally: %s", len(definitions.skipped),
                         self.host, len(definitions.flags), "; ".join(definitions.skipped[:5]))  # fmt: skip
        return None

    def _refuse(self, status: int) -> None:
        self.definitions = CLEARED
        self.etag = None
        if self._refused == status:
            return  # said once for this refusal; said again only after it ends and recurs
        self._refused = status
        if status == 401:
            logger.error(
                "posthog_otel: PostHog refused the personal API key %s for flag definitions (HTTP 401). Local "
                "evaluation is off until it is accepted: every flag is asked of PostHog's /flags. Check "
                "POSTHOG_PERSONAL_API_KEY (or POSTHOG_SECRET_KEY) and that it belongs to the project of the "
                "project API key.",
                redact(self._personal_key),
            )
        else:
            logger.warning(
                "posthog_otel: PostHog's feature flags quota is used up (HTTP 402): flag definitions are cleared "
                "and every flag is asked of /flags. See https://posthog.com/docs/billing/limits-alerts"
            )

    def _failed(self, why: str) -> None:
        kept = "keeping the definitions loaded earlier" if self.definitions is not None else "none loaded yet"
        warn_limited("flags:poll", "posthog_otel: could not load flag definitions: %s; %s, retrying in %gs",
                     why, kept, self.interval)  # fmt: skip

    def _after_fork(self) -> None:
        """Locks and events may have been held by a parent thread that is gone: make new ones."""
        stopped, answered = self._stop.is_set(), self._first_answer.is_set()
        self._new_process_state()
        if stopped:
            self._stop.set()
        if answered:
            self._first_answer.set()


_live: "weakref.WeakSet[DefinitionsPoller]" = weakref.WeakSet()


@_state.at_fork
def _after_fork_in_child() -> None:
    for poller in list(_live):
        poller._after_fork()
