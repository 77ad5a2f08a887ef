"""Projects: which key a request is for, whether it may use it, and the delivery behind each.

One ``Dispatcher`` per project key, made on the key's first request in each worker: its own
memory, HTTP thread and spool (the spool directory is derived from key and host, so a
worker's siblings and its next start share it, and batches leave in order across them).

**Slots.** A worker serves ``max_projects`` keys at once. A key proves itself once PostHog
has accepted a batch for it (keys on the allow-list and ``POSTHOG_API_KEY`` are trusted
from the start); until then, its slot is the first to go: when all are taken, a new key
takes the slot of the least recently used key that has not proved itself, so made-up keys
can never keep a real one out. A project without a request for ``project_idle`` seconds is
closed (what it holds is delivered or spooled; its spool stays for its next request). A
project is never closed while a request is using it. With no slot to free, a new key is
answered 503 with ``Retry-After``.

**Never an open relay.** With an allow-list, only its keys (and ``POSTHOG_API_KEY``) are
taken, from anyone who can reach the gateway and names one. Without one, any well-formed
key is taken, but only from this machine's own addresses: a gateway bound to a public
address by a server it does not control (``gunicorn --bind 0.0.0.0``) still relays
nothing for others. ``POSTHOG_API_KEY`` stands in for a request that names no key only
when that request comes from this machine (not through a proxy): a remote client must
bring its own credential, or anyone who can reach the port could write to that project.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from .._config import Settings, redact
from .._delivery.dispatch import MEMORY_MAX_BYTES, Dispatcher
from .._mapping import Defaults
from .._version import __version__
from ._settings import GatewaySettings, is_loopback_address, key_problem

#: ``$lib`` of the events the gateway sends: PostHog shows which road an event took.
LIBRARY = "posthog-otel-gateway"
#: Seconds a project's fullness is trusted before the spool directory is read again.
PRESSURE_TTL = 0.5


class Refused(Exception):
    """A request the gateway will not take: ``status`` and a message for the client."""

    def __init__(self, status: int, message: str, retry_after: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class Project:
    """One key's delivery, how full it is, and how it is used."""

    def __init__(
        self, dispatcher: Dispatcher, spool_mark: Optional[int], memory_mark: int, trusted: bool, workers: int = 1
    ) -> None:
        self.dispatcher = dispatcher
        self._spool_mark = spool_mark
        self._memory_mark = memory_mark
        self._workers = workers
        self._checked = -PRESSURE_TTL
        self._spool_seen = self._memory_seen = self._admitted = 0
        #: On the allow-list, or POSTHOG_API_KEY; else proven once PostHog accepted a batch.
        self.trusted = trusted
        self._proven = trusted
        self.users = 0  # requests using it now
        self.last_used = time.monotonic()

    @property
    def proven(self) -> bool:
        if not self._proven:
            self._proven = self.dispatcher.stats()["exported"] > 0
        return self._proven

    def full(self, now: float) -> bool:
        """Past the high-water mark: the spool is nearly full, counting what waits in memory
        (it goes to the spool next) in every worker (each is taken to hold what this one
        does) and what was taken since the figures were read; or memory is (the spool is
        off, or the disk refuses it). Memory could hold more than the spool's cap: it was not
        counted, and a gateway's spool grew to twice its cap."""
        if now - self._checked >= PRESSURE_TTL:
            stats = self.dispatcher.stats()
            self._spool_seen, self._memory_seen, self._admitted = stats["spool_bytes"], stats["memory_bytes"], 0
            self._checked = now
        waiting = self._memory_seen + self._admitted
        if self._spool_mark is not None and self._spool_seen + self._workers * waiting >= self._spool_mark:
            return True
        return waiting >= self._memory_mark

    def admitted(self, size: int) -> None:
        """``size`` bytes were just handed to delivery (counted until the next look at the figures)."""
        self._admitted += size


class Projects:
    def __init__(
        self,
        gateway: GatewaySettings,
        delivery: Settings,
        transport: Any = None,
        retry_policy: Any = None,
    ) -> None:
        self.gateway = gateway
        self.delivery = dataclasses.replace(delivery, handle_sigterm=False)  # the server owns signals
        self.default_key = delivery.api_key
        self.allowed = frozenset(gateway.allowed_keys | ({delivery.api_key} if delivery.api_key else set()))
        self._transport = transport
        self._retry_policy = retry_policy
        self._defaults = Defaults(
            library={"$lib": LIBRARY, "$lib_version": __version__, "$is_server": True},
            system={},  # the gateway's own OS and Python say nothing about the service that sent the record
            disable_geoip=delivery.disable_geoip,
        )
        self._lock = threading.Lock()
        self._projects: Dict[str, Project] = {}
        self._closing: Dict[str, threading.Thread] = {}  # taken out of service, still delivering
        self._closed = False
        self._next_sweep = 0.0

    @property
    def defaults(self) -> Defaults:
        return self._defaults

    @property
    def closed(self) -> bool:
        return self._closed

    def key_for(self, authorization: Optional[str], peer: Optional[str], forwarded: bool = False) -> str:
        """The project key of a request; ``Refused`` (401/403) when there is none it may use.

        ``forwarded``: the request names a client beyond the peer (``Forwarded``,
        ``X-Forwarded-For``, ``X-Real-IP``): a proxy on this machine relays it, so a loopback
        peer says nothing about who sent it."""
        key = _bearer(authorization) if authorization else None
        if key is None:
            if authorization:
                raise Refused(401, "the Authorization header is not 'Bearer <project API key>'")
            if not self.default_key:
                raise Refused(401, "no project key: send 'Authorization: Bearer phc_...' (or start the gateway "
                                   "with POSTHOG_API_KEY)")  # fmt: skip
            if forwarded or not (peer and is_loopback_address(peer)):
                raise Refused(401, "no project key: send 'Authorization: Bearer phc_...' (the gateway's own key "
                                   "serves requests from its own machine only)")  # fmt: skip
            return self.default_key
        problem = key_problem(key)
        if problem:
            raise Refused(401, "the bearer token is %s" % problem)
        if self.allowed:
            if key not in self.allowed:
                raise Refused(403, "project key %s is not on this gateway's allow-list (POSTHOG_OTEL_GATEWAY_KEYS)"
                                   % redact(key))  # fmt: skip
        elif not (peer and is_loopback_address(peer)):
            raise Refused(403, "this gateway has no allow-list (POSTHOG_OTEL_GATEWAY_KEYS): it takes keys only "
                               "from its own machine")  # fmt: skip
        elif forwarded:
            raise Refused(403, "this gateway has no allow-list (POSTHOG_OTEL_GATEWAY_KEYS): it takes keys only "
                               "from its own machine, and this request was relayed by a proxy for another one")  # fmt: skip
        return key

    def project(self, key: str) -> Project:
        """The key's project, marked in use until ``release``; ``Refused`` (503) when the
        gateway stops or no slot can be freed for it."""
        now = time.monotonic()
        closing: List[Tuple[str, Project]] = []
        with self._lock:
            if now >= self._next_sweep:
                self._next_sweep = now + 1.0
                closing += self._sweep(now)
            project = self._projects.get(key)
            if project is None:
                if self._closed:
                    raise Refused(503, "the gateway is stopping", retry_after=self.gateway.retry_after)
                if key in self._closing:  # two dispatchers must never share one spool directory
                    raise Refused(503, "this project key was idle and its delivery is being closed; retry in a "
                                       "moment", retry_after=self.gateway.retry_after)  # fmt: skip
                if len(self._projects) >= self.gateway.max_projects:
                    closing += self._free_a_slot()
                project = self._open(key)
                self._projects[key] = project
            project.users += 1
            project.last_used = now
            for key_closed, closed in closing:
                self._closing[key_closed] = self._close_in_background(key_closed, closed)
        for thread in [self._closing.get(k) for k, _ in closing]:
            if thread is not None:
                thread.start()
        return project

    def _close_in_background(self, key: str, project: Project) -> threading.Thread:
        """A thread that closes a project taken out of service (delivers or spools what it
        holds, off the request's thread), removes its spool directory if nothing is left in
        it (made-up keys would leave one each), then lets the key be opened again."""

        def close() -> None:
            try:
                project.dispatcher.shutdown(self.gateway.close_budget * 1000)
                project.dispatcher.remove_spool_if_empty()
            finally:
                with self._lock:
                    self._closing.pop(key, None)

        return threading.Thread(target=close, name="posthog-otel-close", daemon=True)

    def release(self, project: Project) -> None:
        with self._lock:
            project.users -= 1
            project.last_used = time.monotonic()

    def _sweep(self, now: float) -> List[Tuple[str, Project]]:
        """Projects without a request for ``project_idle`` seconds, taken out (to close)."""
        idle = [key for key, p in self._projects.items()
                if not p.trusted and not p.users and now - p.last_used >= self.gateway.project_idle]  # fmt: skip
        return [(key, self._projects.pop(key)) for key in idle]

    def _free_a_slot(self) -> List[Tuple[str, Project]]:
        """The least recently used project whose key PostHog has not accepted yet, taken out;
        ``Refused`` (503) when every slot holds a proven or busy one."""
        candidates = sorted((p.last_used, key) for key, p in self._projects.items() if not p.users and not p.proven)
        if not candidates:
            raise Refused(503, "this gateway serves %d project keys at once, all in use (POSTHOG_OTEL_GATEWAY_MAX_PROJECTS); "
                               "retry later" % self.gateway.max_projects, retry_after=self.gateway.retry_after)  # fmt: skip
        key = candidates[0][1]
        return [(key, self._projects.pop(key))]

    def open_known(self) -> None:
        """Open the project of every key on the allow-list (and ``POSTHOG_API_KEY``): each
        dispatcher sends what an earlier run left in its spool as soon as it is made. Keys
        the gateway learns from requests only are opened at their first request."""
        for key in sorted(self.allowed)[: self.gateway.max_projects]:
            try:
                self.release(self.project(key))
            except Refused:  # stopping already
                return

    def _open(self, key: str) -> Project:
        settings = dataclasses.replace(self.delivery, api_key=key)
        dispatcher = Dispatcher(settings, "gateway", _no_records, self._retry_policy, self._transport)
        mark = self.gateway.high_water
        spool_mark = int(settings.spool_max_bytes * mark) if settings.spool else None
        return Project(
            dispatcher, spool_mark, int(MEMORY_MAX_BYTES * mark), key in self.allowed, self.gateway.worker_count
        )

    def pressure(self, project: Project) -> None:
        """``Refused`` (503, ``Retry-After``) while the project's spool is past the high-water mark."""
        if project.full(time.monotonic()):
            raise Refused(
                503,
                "PostHog is not taking events as fast as they come and this gateway's spool is nearly full; "
                "retry later",
                retry_after=self.gateway.retry_after,
            )

    def snapshot(self) -> List[Tuple[str, Dict[str, Any]]]:
        """(redacted key, the dispatcher's stats) for each project this worker serves."""
        with self._lock:
            projects = list(self._projects.items())
        return [(redact(key) or "", project.dispatcher.stats()) for key, project in projects]

    def close(self, budget: float) -> None:
        """Deliver what each project holds while PostHog answers, spool the rest; all at once,
        within about ``budget`` seconds."""
        with self._lock:
            self._closed = True
            projects = list(self._projects.values())
        deadline = time.monotonic() + budget
        threads = [
            threading.Thread(
                target=p.dispatcher.shutdown, args=(budget * 1000,), name="posthog-otel-close", daemon=True
            )
            for p in projects
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0) + 1.0)


def _bearer(authorization: str) -> Optional[str]:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _no_records(items: Any) -> Tuple[List[Any], List[int]]:
    """The gateway hands over mapped events only (``MappedEvents``)."""
    return [], []
