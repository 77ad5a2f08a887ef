"""PostHog's two ingestion protocols: how a group of events becomes one request and what
an answer means.  Pure apart from the clock and uuids of the request envelope.

- ``/batch/`` (the default): the key in the body, all or nothing on HTTP 200.
- Capture V1 (``/i/v1/analytics/events``): bearer auth, a request id stable across
  attempts, a per-event answer (``ok``/``warning`` delivered, ``drop`` final, ``retry``
  resent).  Events are reshaped as PostHog's SDK does: ``$set``/``$set_once`` into
  ``properties``, ``$lib*`` dropped (the SDK-Info header carries them), sentinel
  properties into typed ``options``, a string ``$session_id`` to the top level.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import uuid as _uuid
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .._version import __version__
from .encoding import EncodedBatch, batch_body, compress, compress_as, encode_events
from .http import Post, Response
from .retry import Outcome, RetryPolicy, Verdict, judge_status, parse_retry_after

SDK_INFO = "posthog-otel/%s" % __version__
V1_PATH = "/i/v1/analytics/events"
V1_RETRYABLE = frozenset({404, 408, 429})


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


class Exchange:
    """Sending one request's worth of events, over as many attempts as the dispatcher makes.

    ``attempt`` runs on the HTTP thread; the dispatcher reads ``pending`` and
    ``server_dropped`` after it returns.
    """

    def __init__(self, batch: EncodedBatch, post: Post, settings: Any, policy: RetryPolicy) -> None:
        self.batch = batch
        self.pending = batch.count  # events not delivered yet
        self.delivered = 0  # events PostHog took, over all attempts
        self.server_dropped: List[Tuple[str, str]] = []  # (uuid, details) answered "drop"
        self._post = post
        self._settings = settings
        self._policy = policy

    def attempt(self, number: int, timeout: float) -> Verdict:
        raise NotImplementedError

    def remaining(self) -> EncodedBatch:
        """What this request has not delivered yet."""
        return self.batch if self.pending else EncodedBatch.of((), 0)


class BatchExchange(Exchange):
    def attempt(self, number: int, timeout: float) -> Verdict:
        # sent_at is the send time of *this* attempt: PostHog corrects clock skew with it.
        body = batch_body(self._settings.api_key, self.batch.parts, _now(), self._settings.historical_migration)
        headers = {"Content-Type": "application/json"}
        if self._settings.gzip:
            body, headers["Content-Encoding"] = compress(body), "gzip"
        response = self._post(self._settings.host + "/batch/", body, headers, timeout)
        if response.status == 200:
            self.delivered, self.pending = self.delivered + self.pending, 0
            return Verdict(Outcome.DELIVERED, 200)
        return judge_status(response, self._policy)


class V1Exchange(Exchange):
    """Capture V1: a request id and ``created_at`` stable across attempts; only events answered
    ``retry`` are sent again."""

    def __init__(self, batch: EncodedBatch, post: Post, settings: Any, policy: RetryPolicy) -> None:
        super().__init__(batch, post, settings, policy)
        self._events = batch.events()
        self._request_id = str(_uuid.uuid4())
        self._created_at = _now()

    def remaining(self) -> EncodedBatch:
        if not self.pending:
            return EncodedBatch.of((), 0)
        if len(self._events) == self.batch.count:
            return self.batch
        return EncodedBatch.encode(self._events)[0]

    def attempt(self, number: int, timeout: float) -> Verdict:
        wire = [to_v1_event(e) for e in self._events]
        _, parts, _ = encode_events(wire, max_event_bytes=1 << 62)
        envelope = b'{"created_at":%s,%s"batch":[%s]}' % (
            json.dumps(self._created_at).encode(),
            b'"historical_migration":true,' if self._settings.historical_migration else b"",
            b",".join(parts),
        )
        headers = {
            "Content-Type": "application/json",
            "Authorization": "Bearer %s" % self._settings.api_key,
            "PostHog-Sdk-Info": SDK_INFO,
            "PostHog-Attempt": str(number),
            "PostHog-Request-Id": self._request_id,
            "PostHog-Request-Timestamp": _now(),
        }
        codec = self._settings.capture_compression or ("gzip" if self._settings.gzip else "none")
        if codec != "none":  # Capture V1 only, as in PostHog's SDK: /batch/ follows ``gzip``
            envelope, headers["Content-Encoding"] = compress_as(codec, envelope)
        response = self._post(self._settings.host + V1_PATH, envelope, headers, timeout)
        if not 200 <= response.status < 300:
            return judge_status(response, self._policy)
        return self._apply_results(response)

    def _apply_results(self, response: Response) -> Verdict:
        try:
            results = json.loads(response.text)["results"]
            if not isinstance(results, dict):
                raise TypeError("results is not a map")
        except (ValueError, KeyError, TypeError):
            # A 2xx whose body we cannot read: the batch was accepted as a whole, so
            # resending would duplicate it; PostHog's SDK also stops here.
            self.delivered, self._events, self.pending = self.delivered + self.pending, [], 0
            return Verdict(Outcome.DELIVERED, response.status, "unreadable per-event results")
        retry = []
        dropped = 0
        for event in self._events:
            answer = results.get(event.get("uuid")) or {}
            verdict = answer.get("result") if isinstance(answer, dict) else None
            if verdict == "retry":
                retry.append(event)
            elif verdict == "drop":
                dropped += 1
                self.server_dropped.append((str(event.get("uuid")), str(answer.get("details") or "")))
        self.delivered += len(self._events) - len(retry) - dropped
        self._events, self.pending = retry, len(retry)
        if not retry:
            return Verdict(Outcome.DELIVERED, response.status)
        return Verdict(
            None,
            response.status,
            "%d event(s) answered retry" % len(retry),
            parse_retry_after(response.headers.get("Retry-After")),
        )


def _as_bool(value: Any) -> Optional[bool]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"true": True, "1": True, "false": False, "0": False}.get(value.strip().lower())
    if isinstance(value, (int, float)):
        return value != 0
    return None


def _as_str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


_OPTIONS: Sequence[Tuple[str, str, Callable[[Any], Any]]] = (
    ("$cookieless_mode", "cookieless_mode", _as_bool),
    ("$ignore_sent_at", "disable_skew_correction", _as_bool),
    ("$product_tour_id", "product_tour_id", _as_str),
    ("$process_person_profile", "process_person_profile", _as_bool),
)
_TOP_LEVEL = (("$session_id", "session_id"), ("$window_id", "window_id"))


def to_v1_event(event: Dict[str, Any]) -> Dict[str, Any]:
    """A ``/batch/``-shaped event in Capture V1's shape (a new dict; the input is kept)."""
    properties = dict(event.get("properties") or {})
    for key in ("$set", "$set_once"):
        value = event.get(key)
        if isinstance(value, dict):
            existing = properties.get(key)
            properties[key] = {**value, **existing} if isinstance(existing, dict) else value
    properties.pop("$lib", None)
    properties.pop("$lib_version", None)
    options: Dict[str, Any] = {}
    for source, target, coerce in _OPTIONS:
        if source in properties:
            value = coerce(properties.pop(source))
            if value is not None:
                options[target] = value
    wire = {
        "event": event["event"],
        "uuid": event["uuid"],
        "distinct_id": event["distinct_id"],
        "timestamp": event["timestamp"],
        "options": options,
        "properties": properties,
    }
    for source, target in _TOP_LEVEL:
        if isinstance(properties.get(source), str):
            wire[target] = properties.pop(source)
    return wire


def exchange_class(capture_mode: str) -> "type[Exchange]":
    return V1Exchange if capture_mode == "v1" else BatchExchange


def policy_for(capture_mode: str, policy: RetryPolicy) -> RetryPolicy:
    """Capture V1 also retries 404 (the endpoint may not be rolled out everywhere yet)."""
    if capture_mode != "v1":
        return policy
    return dataclasses.replace(policy, retryable_statuses=policy.retryable_statuses | V1_RETRYABLE)
