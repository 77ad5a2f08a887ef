"""Feature flags in the local PostHog: ``GET /flags/definitions`` and ``POST /flags/``.

The flag file is either PostHog's own definitions (what ``/flags/definitions`` returns:
``{"flags": [...], "group_type_mapping": {...}, "cohorts": {...}}``, e.g. saved from a
real project) or the simple form ``{"new_dashboard": true, "checkout": "test"}``, which
is read as flags on for everyone (``false``: off; a string: that variant for everyone).

Both endpoints serve the same definitions: SDKs with a personal key evaluate them
locally (any bearer token is accepted; none is a 401, as in PostHog), and ``/flags``
evaluates them here with the same evaluator, on the person and group properties the
local store holds, overridden by those the request sends (as PostHog does). What
cannot be decided here (a static cohort, a property neither stored nor sent) is
answered as not matching, with the reason saying why.
"""

from __future__ import annotations

import hashlib
import json
import uuid as _uuid
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .._flags.definitions import Definitions, Flag
from .._flags.errors import Undecidable
from .._flags.evaluator import Evaluation
from .serving import HTTPError

Reply = Tuple[int, Dict[str, Any], Dict[str, str]]


def definitions_from(data: Any) -> Definitions:
    """PostHog's definitions format, or the simple ``{"flag": value}`` one; ValueError if neither."""
    if isinstance(data, dict) and isinstance(data.get("flags"), list):
        return Definitions.from_response(data)
    if not isinstance(data, dict):
        raise ValueError("a flag file is a JSON object")
    flags = []
    for index, (key, value) in enumerate(data.items(), 1):
        if not isinstance(value, (bool, str)):
            raise ValueError("flag %r: a simple flag file maps keys to true, false or a variant name" % key)
        filters: Dict[str, Any] = {
            "groups": [{"properties": [], "rollout_percentage": 100}] if value is not False else []
        }
        if isinstance(value, str):
            filters["multivariate"] = {"variants": [{"key": value, "rollout_percentage": 100}]}
        flags.append({"id": index, "key": key, "active": True, "filters": filters})
    return Definitions(flags)


def load_file(path: Any) -> Definitions:
    try:
        return definitions_from(json.loads(Path(path).read_text()))
    except ValueError as problem:
        raise ValueError("%s: %s" % (path, problem)) from None


class LocalFlags:
    """The flag endpoints of one local server."""

    def __init__(self, definitions: Definitions, store: Any = None) -> None:
        self.definitions = definitions
        self.store = store
        body = json.dumps(definitions.to_response(), sort_keys=True)
        self.etag = '"%s"' % hashlib.sha256(body.encode()).hexdigest()[:32]

    @classmethod
    def of(cls, flags: Any, store: Any = None) -> "LocalFlags":
        """From a flag file's content (either format), or definitions already read."""
        definitions = flags if isinstance(flags, Definitions) else definitions_from(flags or {})
        return cls(definitions, store)

    def definitions_reply(self, authorization: Optional[str], if_none_match: Optional[str]) -> Reply:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            error = "Authorization: Bearer <personal API key> is missing (any key works locally)"
            return 401, {"type": "authentication_error", "detail": error}, {}
        if if_none_match == self.etag:
            return 304, {}, {"ETag": self.etag}
        return 200, self.definitions.to_response(), {"ETag": self.etag}

    def remote_config_reply(self, authorization: Optional[str], key: str) -> Tuple[int, Any, Dict[str, str]]:
        """``GET /api/projects/@current/feature_flags/<key>/remote_config``: the flag's payload for
        ``true``, as PostHog answers it: its stored JSON text, as a JSON string (so posthog-node
        decodes twice, PostHog's Python SDK returns the text)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return (
                401,
                {"type": "authentication_error", "detail": "Authorization: Bearer <personal API key> is missing"},
                {},
            )
        flag = self.definitions.by_key.get(key)
        if flag is None:
            return 404, {"type": "invalid_request", "detail": "no flag %r" % key}, {}
        payloads = (flag.raw.get("filters") or {}).get("payloads") or {}
        return 200, payloads.get("true") if isinstance(payloads, dict) else None, {}

    def flags_reply(self, request: Any) -> Reply:
        """``POST /flags/``: each asked flag (all, when none are named) evaluated for the request."""
        if not isinstance(request, dict) or not request.get("distinct_id"):
            return 400, {"type": "validation_error", "error": "the body must be a JSON object with a distinct_id"}, {}
        asked = request.get("flag_keys_to_evaluate") or [f.key for f in self.definitions.flags]
        records = {}
        for key in asked:
            flag = self.definitions.by_key.get(key)
            if flag is not None:
                records[key] = self._record(flag, request)
        return 200, {"flags": records, "errorsWhileComputingFlags": False, "requestId": str(_uuid.uuid4())}, {}

    def _record(self, flag: Flag, request: Dict[str, Any]) -> Dict[str, Any]:
        evaluation, person_properties = self.evaluation(request)
        try:
            value = evaluation.value(flag, person_properties)
            reason = {"code": "local_evaluation", "description": "Evaluated by the local PostHog"}
        except Undecidable as problem:
            value = False
            reason = {"code": "no_condition_match", "description": "Not matched: %s" % problem.why}
        except Exception as problem:  # a definition the evaluator cannot read
            value = False
            reason = {"code": "error", "description": "Unreadable definition: %s" % problem}
        variant = value if isinstance(value, str) else None
        raw = flag.raw
        return {
            "key": flag.key,
            "enabled": value is not False,
            "variant": variant,
            "reason": reason,
            "metadata": {"id": raw.get("id"), "version": raw.get("version"), "payload": flag.payload(value)},
        }

    def evaluation(
        self, request: Mapping[str, Any], trace: Optional[List[Any]] = None
    ) -> Tuple[Evaluation, Dict[str, Any]]:
        """An evaluation for the request's person and groups, with the store's properties under the request's."""
        distinct_id = str(request["distinct_id"])
        groups = _object(request, "groups")
        given_groups = _object(request, "group_properties")
        group_properties = {
            name: {**self._stored_group(name, key), "$group_key": key, **_object(given_groups, name)}
            for name, key in groups.items()
        }
        given = _object(request, "person_properties")
        person_properties = {**self._stored_person(distinct_id), **given}
        person_properties.setdefault("distinct_id", distinct_id)
        evaluation = Evaluation(
            self.definitions, distinct_id, groups, group_properties, request.get("device_id"), trace
        )
        return evaluation, person_properties

    def _stored_person(self, distinct_id: str) -> Dict[str, Any]:
        found = self.store.person(distinct_id) if self.store is not None else None
        return dict(found["properties"]) if found else {}

    def _stored_group(self, group_type: str, group_key: Any) -> Dict[str, Any]:
        found = self.store.group(group_type, str(group_key)) if self.store is not None else None
        return dict(found["properties"]) if found else {}

    # --- the HTTP side: the server routes here, these read and answer ---------------------------

    def handle_remote_config(self, handler: Any, key: str) -> int:
        return respond(handler, *self.remote_config_reply(handler.headers.get("Authorization"), key))

    def handle_get(self, handler: Any) -> int:
        """``GET /flags/definitions?token=...`` on an ``http.server`` handler; the status sent."""
        reply = self.definitions_reply(handler.headers.get("Authorization"), handler.headers.get("If-None-Match"))
        return respond(handler, *reply)

    def handle_post(self, handler: Any, read_json: Any) -> int:
        """``POST /flags/`` on an ``http.server`` handler; ``read_json`` reads its body (or raises,
        saying why); the status sent. Transport problems (size, time) keep their own answer."""
        try:
            request = read_json()
        except HTTPError:
            raise
        except Exception as problem:
            return respond(handler, 400, {"type": "validation_error", "error": str(problem)}, {})
        return respond(handler, *self.flags_reply(request))


def _object(container: Mapping[str, Any], key: str) -> Dict[str, Any]:
    value = container.get(key)
    return value if isinstance(value, dict) else {}


def respond(handler: Any, status: int, body: Any, headers: Dict[str, str]) -> int:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    if status == 304:  # no body, by definition
        handler.end_headers()
        return status
    data = json.dumps(body).encode("utf-8")
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
    return status
