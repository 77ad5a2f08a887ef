"""One flag call from start to end: local first, ``/flags`` for what is left, then the event.

Each read is split in steps so the synchronous and the asyncio API share them: ``local()``
(microseconds, on any thread or loop), ``remote()`` (a blocking request, which the async
API runs in a worker thread), then ``report()`` or ``snapshot()``. The rules are PostHog's
SDK's:

- the person properties used locally also hold ``distinct_id`` (unless given), and
  every group named in ``groups`` has ``$group_key`` among its properties;
- a flag read locally reports ``locally_evaluated: true``; a flag ``/flags`` answered
  reports its request id, reason, id and version; a failed request reports its error;
- ``only_evaluate_locally=True`` never asks ``/flags``: what is undecidable is None.
"""

from __future__ import annotations

from collections import abc
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .._config import effective
from .._context import current_scope, get_context_device_id
from .._log import count_drop, logger, warn_limited
from .._operation import _resolve_id
from . import otel_events
from .definitions import Definitions, Flag
from .errors import Reason, Undecidable
from .evaluator import Evaluation
from .events import called_properties, send
from .remote import RemoteAnswer, RemoteFailure, ask, request_body
from .results import FeatureFlagResult, FlagValue
from .service import FlagService, current_service
from .snapshot import FeatureFlagEvaluations, FlagRecord, checked_payload, decode_payload


class Call:
    """A call's inputs, resolved once: who, which service, and the properties both ways."""

    __slots__ = ("person", "service", "groups", "person_properties", "local_person", "group_properties",
                 "disable_geoip", "device_id")  # fmt: skip
    local_person: Mapping[str, Any]

    def __init__(
        self,
        person: str,
        service: FlagService,
        groups: Optional[Mapping[str, Any]],
        person_properties: Optional[Mapping[str, Any]],
        group_properties: Optional[Mapping[str, Mapping[str, Any]]],
        disable_geoip: Optional[bool],
        device_id: Optional[str],
    ) -> None:
        self.person = person
        self.service = service
        self.groups: Mapping[str, Any] = _groups_of(groups)
        self.person_properties: Mapping[str, Any] = _map_or_nothing(person_properties, "person_properties", "a map")
        # Local evaluation also sees the distinct id as a property (unless one is given).
        if "distinct_id" in self.person_properties:
            self.local_person = self.person_properties
        else:
            self.local_person = {**self.person_properties, "distinct_id": person}
        self.group_properties: Dict[str, Dict[str, Any]] = {}
        if self.groups:
            given = _map_or_nothing(group_properties, "group_properties", "a map of group type to a map")
            self.group_properties = {
                name: {"$group_key": key, **_map_or_nothing(given.get(name), "group_properties", "a map of maps")}
                for name, key in self.groups.items()
            }
        self.disable_geoip = disable_geoip
        self.device_id = device_id if device_id is not None else get_context_device_id()

    @classmethod
    def start(cls, distinct_id: Any, *args: Any) -> Optional["Call"]:
        """The call's inputs, or None (warned and counted) when it cannot be made: no distinct id or key."""
        person = _resolve_id(distinct_id, current_scope())
        if person is None:
            count_drop("no_distinct_id")
            warn_limited(
                "flag:no_id", "posthog_otel: feature flags need a distinct_id (argument or identify_context())"
            )
            return None
        service = current_service()
        if service is None or service.disabled():
            return None
        return cls(person, service, *args)

    def evaluation(self, definitions: Definitions) -> Evaluation:
        """An evaluation of these inputs; one serves any number of flags."""
        return Evaluation(definitions, self.person, self.groups, self.group_properties, self.device_id)

    def ask(self, flag_keys: Optional[List[str]], deadline: Optional[float] = None) -> RemoteAnswer:
        settings = effective(self.service.settings)  # the test fixture's local PostHog, while it runs
        body = request_body(settings, self.person, self.groups, self.person_properties,
                            self.group_properties, self.disable_geoip, self.device_id, flag_keys)  # fmt: skip
        return ask(self.service.http, settings, body, deadline)

    def first_time(self, key: str, response: Any) -> bool:
        """Whether this read of ``key`` is to be reported (recorded as reported if so)."""
        return self.service.events.first_time(self.person, key, response, self.groups)

    def send(self, properties: Dict[str, Any], has_experiment: Optional[bool] = None) -> None:
        if has_experiment is not None:
            properties["$feature_flag_has_experiment"] = has_experiment
        send(self.person, properties, self.groups, self.disable_geoip, self.service.capture)


def _map_or_nothing(value: Any, name: str, expected: str) -> Mapping[str, Any]:
    """``value`` as a plain dict if it is a map; nothing (with a warning) if it is something else."""
    if type(value) is dict:
        return value
    if value is None:
        return {}
    if isinstance(value, abc.Mapping):
        try:
            return dict(value)  # a copy the evaluator and the JSON encoder can read
        except Exception:
            pass
    warn_limited("flag:input:" + name, "posthog_otel: flag call %s must be %s, not a %s; ignored",
                 name, expected, type(value).__name__)  # fmt: skip
    return {}


def _groups_of(value: Any) -> Mapping[str, Any]:
    """The call's groups: group types (text) to group keys (text or numbers); others are ignored, with a warning."""
    groups = _map_or_nothing(value, "groups", "a map of group type to group key")
    if all(type(name) is str and type(key) in _GROUP_KEY_TYPES for name, key in groups.items()):
        return groups  # the common case: nothing to leave out
    kept = {}
    for name, key in groups.items():
        if type(name) is str and type(key) in _GROUP_KEY_TYPES:
            kept[name] = key
        else:
            warn_limited("flag:input:groups", "posthog_otel: flag call groups map a group type (text) to a group key "
                         "(text or a number); %s is ignored", shown(name))  # fmt: skip
    return kept


_GROUP_KEY_TYPES = (str, int, float)


def shown(value: Any) -> str:
    """A caller's value in a warning: its repr, short, or its type when even that fails."""
    try:
        return repr(value)[:60]
    except Exception:
        return "a %s" % type(value).__name__


def report_read(
    service: FlagService,
    person: str,
    key: str,
    response: Any,
    properties: Dict[str, Any],
    groups: Optional[Mapping[str, Any]],
    disable_geoip: Optional[bool],
    has_experiment: Optional[bool] = None,
) -> None:
    if has_experiment is not None:
        properties["$feature_flag_has_experiment"] = has_experiment
    service.events.report(person, key, response, properties, groups, disable_geoip, service.capture)


def local_value(call: Call, evaluation: Evaluation, flag: Flag) -> Tuple[Any, Optional[Reason]]:
    """(value, None) when decided here; (None, reason) when not; errors are logged, not raised."""
    try:
        return evaluation.value(flag, call.local_person), None
    except Undecidable as problem:
        return None, problem.reason
    except Exception as error:
        unreadable(flag, error)
        return None, None


def unreadable(flag: Flag, error: Exception) -> None:
    """A definition local evaluation cannot read: said (rate-limited), and the flag is asked of PostHog."""
    warn_limited("flag:local:%s" % (flag.key,), "posthog_otel: flag %s could not be evaluated locally (%s); "
                 "it is asked of PostHog", flag.key, error)  # fmt: skip


class FlagRead:
    """``get_feature_flag`` / ``feature_enabled`` / ``get_feature_flag_payload`` for one key."""

    def __init__(self, call: Call, key: str, match_value: Any = None) -> None:
        self.call = call
        self.key = key
        self.match_value = match_value
        self.value: Optional[FlagValue] = None
        self._payload: Any = None  # raw; decoded when asked for
        self.locally = False
        self.flag: Optional[Flag] = None
        self.answer: Optional[RemoteAnswer] = None
        self.error: Optional[str] = None

    def local(self, definitions: Optional[Definitions]) -> bool:
        """True when decided here."""
        if definitions is not None and not definitions.empty:
            self.flag = definitions.by_key.get(self.key)
            if self.flag is not None:
                self.value, _ = local_value(self.call, self.call.evaluation(definitions), self.flag)
        if self.value is None:
            return False
        self.locally = True
        if self.match_value is not None:
            self.value = self.match_value  # the payload (and the event) of the value asked about, as PostHog's
        self._payload = self.flag.payload(self.value) if self.flag is not None else None
        return True

    @property
    def payload(self) -> Any:
        """The payload of the answer, decoded (computed only when someone asks)."""
        return decode_payload(self._payload)

    def remote(self, deadline: Optional[float] = None) -> None:
        try:
            self.answer = self.call.ask([self.key], deadline)
        except RemoteFailure as failure:
            self.error = failure.error
            return
        record = self.answer.records.get(self.key)
        errors = []
        if self.answer.errors_while_computing:
            errors.append("errors_while_computing_flags")
        if record is None:
            errors.append("flag_missing")
        elif record.failed:
            errors.append("evaluation_failed")
        self.error = ",".join(errors) or None
        if record is not None and not record.failed:
            self.value = record.value if self.match_value is None else self.match_value
            self._payload = record.payload

    def result(self) -> Optional[FeatureFlagResult]:
        """PostHog's ``FeatureFlagResult`` of this read: local answers carry no reason; one of
        ``/flags`` carries PostHog's; none for a flag PostHog marked failed, or no answer."""
        if self.locally:
            return FeatureFlagResult.of_value(self.key, self.value, self.payload)
        record = self.answer.records.get(self.key) if self.answer is not None else None
        if record is None or record.failed:
            return None
        return FeatureFlagResult(
            self.key, record.enabled, record.variant, decode_payload(record.payload), record.reason
        )

    def report(self) -> None:
        if not self.call.first_time(self.key, self.value):
            return  # reported before: the event is not even built
        properties = called_properties(self.key, self.value, self.locally, self.payload)
        has_experiment = None
        if self.locally and self.flag is not None:
            raw = self.flag.raw
            if raw.get("version"):
                properties["$feature_flag_version"] = raw["version"]
            if raw.get("id"):
                properties["$feature_flag_id"] = raw["id"]
            has_experiment = _bool_or_none(raw.get("has_experiment"))
        elif self.answer is not None:
            _add_answer_properties(properties, self.answer, self.answer.records.get(self.key))
            record = self.answer.records.get(self.key)
            has_experiment = record.has_experiment if record else None
        if self.error:
            properties["$feature_flag_error"] = self.error
        self.call.send(properties, has_experiment)


def _add_answer_properties(properties: Dict[str, Any], answer: RemoteAnswer, record: Any) -> None:
    if answer.request_id:
        properties["$feature_flag_request_id"] = answer.request_id
    if answer.evaluated_at:
        properties["$feature_flag_evaluated_at"] = answer.evaluated_at
    if record is not None:
        if record.reason:
            properties["$feature_flag_reason"] = record.reason
        if record.version:
            properties["$feature_flag_version"] = record.version
        if record.id:
            properties["$feature_flag_id"] = record.id


class AllRead:
    """``get_all_flags`` / ``get_all_flags_and_payloads``: every flag (or ``flag_keys``) at once."""

    def __init__(self, call: Call, flag_keys: Optional[List[str]]) -> None:
        self.call = call
        self.flag_keys = flag_keys
        self.flags: Dict[str, Any] = {}
        self.payloads: Dict[str, Any] = {}  # raw, as the definitions or /flags hold them
        self.unresolved: Dict[str, Reason] = {}
        self.definitions: Optional[Definitions] = None

    def local(self, definitions: Optional[Definitions]) -> bool:
        """Evaluate what can be; True when nothing is left for ``/flags``."""
        self.definitions = definitions
        if definitions is None or definitions.empty:
            return False
        wanted = set(self.flag_keys) if self.flag_keys else None
        complete = True
        evaluation = self.call.evaluation(definitions)
        person = self.call.local_person
        for flag in definitions.flags:
            key = flag.key
            if key is None:
                complete = False  # PostHog's SDK fails on a keyless flag and asks /flags
                continue
            if wanted is not None and key not in wanted:
                continue
            try:
                value = evaluation.value(flag, person)
            except Undecidable as problem:
                complete = False
                self.unresolved[key] = problem.reason
                continue
            except Exception as error:
                complete = False
                unreadable(flag, error)
                continue
            self.flags[key] = value
            chosen = definitions.by_key[key]  # payloads come from the last definition of a key
            if chosen.payloads:
                raw = chosen.payload(value)
                if raw is not None:
                    self.payloads[key] = raw
        return complete

    def remote(self, deadline: Optional[float] = None) -> None:
        """Ask ``/flags``; its answers replace the local ones (a failed one keeps the local value)."""
        try:
            answer = self.call.ask(self.flag_keys, deadline)
        except RemoteFailure as failure:
            logger.warning("posthog_otel: could not get all flags from PostHog (%s); returning those decided locally",
                           failure.error)  # fmt: skip
            return
        failed = {key for key, record in answer.records.items() if record.failed}
        flags = {k: v for k, v in self.flags.items() if k in failed}
        payloads = {k: v for k, v in self.payloads.items() if k in failed}
        for key, record in answer.records.items():
            if record.failed:
                continue
            flags[key] = record.value
            if record.enabled and record.payload is not None:
                payloads[key] = record.payload
        self.flags, self.payloads = flags, payloads

    def checked_payloads(self) -> Dict[str, Any]:
        return {key: checked_payload(raw) for key, raw in self.payloads.items()}


class SnapshotRead:
    """``evaluate_flags``: local records first, one ``/flags`` request for the rest."""

    def __init__(self, call: Call, flag_keys: Optional[List[str]]) -> None:
        self.call = call
        self.flag_keys = flag_keys
        self.all = AllRead(call, flag_keys)
        self.records: Dict[str, FlagRecord] = {}
        self.request_id: Optional[str] = None
        self.evaluated_at: Any = None
        self.errors_while_computing = False
        self.quota_limited = False

    def local(self, definitions: Optional[Definitions]) -> bool:
        complete = self.all.local(definitions)
        for key, value in self.all.flags.items():
            raw = definitions.by_key[key].raw if definitions is not None else {}
            self.records[key] = FlagRecord(
                key, value is not False, value if isinstance(value, str) else None,
                decode_payload(self.all.payloads.get(key)), raw.get("id"), raw.get("version"),
                "Evaluated locally", True, _bool_or_none(raw.get("has_experiment")),
            )  # fmt: skip
        wanted = set(self.flag_keys) if self.flag_keys else set()
        return complete and wanted.issubset(self.records)

    def remote(self, deadline: Optional[float] = None) -> None:
        local_keys = set(self.records)
        try:
            answer = self.call.ask(self.flag_keys, deadline)
        except RemoteFailure as failure:
            if failure.error == "quota_limited":
                self.quota_limited = True
            else:
                logger.warning("posthog_otel: could not evaluate flags remotely (%s)", failure.error)
            return
        self.request_id = answer.request_id
        self.evaluated_at = answer.evaluated_at if isinstance(answer.evaluated_at, int) else None
        self.errors_while_computing = answer.errors_while_computing
        wanted = set(self.flag_keys) if self.flag_keys else None
        for key, record in answer.records.items():
            if key in local_keys or (wanted is not None and key not in wanted):
                continue
            self.records[key] = FlagRecord(
                key, record.enabled, record.variant, decode_payload(record.payload), _number_or_none(record.id),
                _number_or_none(record.version), record.reason, False, record.has_experiment, record.failed,
            )  # fmt: skip

    def snapshot(self) -> FeatureFlagEvaluations:
        call = self.call
        unresolved = {k: r for k, r in self.all.unresolved.items() if k not in self.records or self.records[k].failed}
        return FeatureFlagEvaluations(
            _reporter(call.service), call.person, call.service.overrides.overlay(self.records), call.groups,
            call.disable_geoip, self.request_id,
            self.evaluated_at, self.errors_while_computing, self.quota_limited, unresolved,
        )  # fmt: skip


def _reporter(service: FlagService) -> Callable[..., None]:
    def report(
        person: str,
        key: str,
        response: Any,
        properties: Dict[str, Any],
        groups: Optional[Mapping[str, Any]],
        disable_geoip: Optional[bool],
        has_experiment: Optional[bool],
    ) -> None:
        report_read(service, person, key, response, properties, groups, disable_geoip, has_experiment)
        if otel_events.wanted(service):
            otel_events.evaluated(key, response, None, properties.get("$feature_flag_error"))

    return report


def empty_snapshot(call: Optional[Call] = None) -> FeatureFlagEvaluations:
    """No flags: for a call without a distinct id (reports nothing) or with ``flag_keys=[]``."""
    if call is None:
        return FeatureFlagEvaluations(None, "", {})
    return FeatureFlagEvaluations(_reporter(call.service), call.person, {}, call.groups, call.disable_geoip)


def _bool_or_none(value: Any) -> Optional[bool]:
    return value if isinstance(value, bool) else None


def _number_or_none(value: Any) -> Any:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
