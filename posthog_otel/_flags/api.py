"""The feature flag calls, argument for argument PostHog's module-level ones, and their awaitables.

``feature_enabled``, ``get_feature_flag``, ``get_feature_flag_payload``, ``get_all_flags``,
``get_all_flags_and_payloads`` and ``evaluate_flags`` take PostHog's arguments in
PostHog's order (``distinct_id`` may be left out inside ``identify_context``). Each
has an ``*_async`` twin for asyncio: the local part runs inline (microseconds), and
what blocks (waiting for the first definitions, asking ``/flags``) runs in a worker
thread, so the event loop never waits on the network.

None of them raises: a failure is logged (rate-limited) and the call returns None (or
an empty result).
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, TypeVar, cast

from .._guard import failed
from .._log import count_drop, warn_limited
from . import otel_events
from .definitions import Definitions
from .reads import AllRead, Call, FlagRead, SnapshotRead, empty_snapshot, shown
from .results import FlagValue
from .service import FlagService, calls_disabled, current_service, overrides_in_effect, service_in_use
from .snapshot import FeatureFlagEvaluations

Groups = Optional[Mapping[str, Any]]
Properties = Optional[Mapping[str, Any]]
GroupProperties = Optional[Mapping[str, Mapping[str, Any]]]
T = TypeVar("T")


def _never_raises(default: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """``_guard.guarded`` for flag calls: their own empty answer instead of None, and coroutines too."""

    def decorate(function: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> T:
            try:
                return function(*args, **kwargs)
            except Exception as error:  # default: the call's own empty answer, a T by the decorator's use
                return cast(T, _failed(function, args, kwargs, error, default))

        @functools.wraps(function)
        async def guarded_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await function(*args, **kwargs)  # type: ignore[misc]
            except Exception as error:
                return _failed(function, args, kwargs, error, default)

        return guarded_async if asyncio.iscoroutinefunction(function) else guarded  # type: ignore[return-value]

    return decorate


def _failed(function: Callable[..., Any], args: Any, kwargs: Any, error: Exception, default: Any) -> Any:
    failed(function.__name__, function, args, kwargs, error)  # the package's one guard: said, counted
    return default() if callable(default) else default


# --- the shared drive: local, then /flags -----------------------------------------------------


def _definitions(service: FlagService, deadline: float) -> Optional[Definitions]:
    definitions = service.definitions()
    if definitions is None and service.first_load_pending():
        definitions = service.wait_for_first_load(deadline)
    return definitions


async def _definitions_async(service: FlagService, deadline: float) -> Optional[Definitions]:
    definitions = service.definitions()
    if definitions is None and service.first_load_pending():
        definitions = await asyncio.to_thread(service.wait_for_first_load, deadline)
    return definitions


R = TypeVar("R", FlagRead, AllRead, SnapshotRead)


def _drive(read: R, only_evaluate_locally: bool) -> R:
    """Local first, ``/flags`` for the rest, within one deadline (``flags_timeout``) for the whole
    read: waiting for the first definitions and asking PostHog share it."""
    service = read.call.service
    deadline = time.monotonic() + service.settings.flags_timeout
    definitions = _definitions(service, deadline)
    if not read.local(definitions):
        if not only_evaluate_locally:
            read.remote(deadline if definitions is None else None)
        elif definitions is None:
            _not_loaded()
    return read


async def _drive_async(read: R, only_evaluate_locally: bool) -> R:
    service = read.call.service
    deadline = time.monotonic() + service.settings.flags_timeout
    definitions = await _definitions_async(service, deadline)
    if not read.local(definitions):
        if not only_evaluate_locally:
            await asyncio.to_thread(read.remote, deadline if definitions is None else None)
        elif definitions is None:
            _not_loaded()
    return read


def _not_loaded() -> None:
    warn_limited("flag:not_loaded", "posthog_otel: only_evaluate_locally=True but no flag definitions are loaded "
                 "(set POSTHOG_PERSONAL_API_KEY, or call load_feature_flags() at start-up); returning None")  # fmt: skip


def _flag_read(key: str, distinct_id: Any, groups: Groups, person_properties: Properties,
               group_properties: GroupProperties, disable_geoip: Optional[bool], device_id: Optional[str],
               match_value: Any = None) -> Optional[FlagRead]:  # fmt: skip
    if not isinstance(key, str) or not key:
        count_drop("invalid_flag_key")
        warn_limited("flag:key", "posthog_otel: a feature flag key must be a non-empty string, not %s", shown(key))
        return None
    call = Call.start(distinct_id, groups, person_properties, group_properties, disable_geoip, device_id)
    return None if call is None else FlagRead(call, key, match_value)


def _finish_flag(read: FlagRead, send_feature_flag_events: bool) -> FlagRead:
    if send_feature_flag_events:
        read.report()
    if otel_events.wanted(read.call.service):
        missing = read.value is None and read.flag is None and read.answer is None  # in no definition, not asked
        otel_events.evaluated(
            read.key, read.value, otel_events.reason_of(read), read.error or ("flag_missing" if missing else None)
        )
    return read


def _keys(flag_keys: Any) -> Optional[List[str]]:
    """The flag keys asked for; what is not a list of strings is ignored (every flag is evaluated), with a warning."""
    if flag_keys is None:
        return None
    if isinstance(flag_keys, (list, tuple, set, frozenset)):
        keys = [key for key in flag_keys if isinstance(key, str)]
        if len(keys) == len(flag_keys):
            return keys
    warn_limited("flag:keys", "posthog_otel: flag keys must be a list of strings, not %s; every flag is evaluated",
                 shown(flag_keys))  # fmt: skip
    return None


def _all_flags_answer(read: Optional[AllRead]) -> Dict[str, Any]:
    overrides = overrides_in_effect()
    if read is None:
        if overrides.active and not calls_disabled():  # no key or no person: the overrides alone
            flags, payloads = overrides.apply_to_all({}, {})
            return {"featureFlags": flags, "featureFlagPayloads": payloads}
        return {"featureFlags": None, "featureFlagPayloads": None}
    flags, payloads = overrides.apply_to_all(read.flags, read.checked_payloads())
    return {"featureFlags": flags, "featureFlagPayloads": payloads}


def overridden_flag(key: Any) -> Tuple[bool, Optional[FlagValue]]:
    """(True, value) when ``override_feature_flags`` answers ``key`` (no evaluation, no request, no
    event; None when the calls are disabled), else (False, None)."""
    overrides = overrides_in_effect()
    if overrides.flags is None or not isinstance(key, str):
        return False, None
    overridden, value = overrides.flag(key)
    if overridden:
        value = None if calls_disabled() else value
        if otel_events.wanted(service_in_use()):
            otel_events.evaluated(key, value, "static")
        return True, value
    return False, None


def overridden_payload(key: Any) -> Any:
    """(True, payload) when overrides answer ``key``'s payload: a payload override, or a flag
    override without one (None), as posthog-node's ``getFeatureFlagPayload``."""
    overrides = overrides_in_effect()
    if not overrides.active or not isinstance(key, str):
        return False, None
    has_payload, payload = overrides.payload(key)
    if has_payload or overrides.flag(key)[0]:
        return True, None if calls_disabled() else payload
    return False, None


# --- the synchronous calls -------------------------------------------------------------------


@_never_raises(None)
def get_feature_flag(
    key: str,
    distinct_id: Any = None,
    groups: Groups = None,
    person_properties: Properties = None,
    group_properties: GroupProperties = None,
    only_evaluate_locally: bool = False,
    send_feature_flag_events: bool = True,
    disable_geoip: Optional[bool] = None,
    device_id: Optional[str] = None,
) -> Optional[FlagValue]:
    """The flag's value for the person: True/False, a variant name, or None if unknown.

    Evaluated locally when definitions are loaded (a personal API key is set) and the
    flag can be decided with the given properties; otherwise asked of PostHog's
    ``/flags`` (unless ``only_evaluate_locally``). Reports ``$feature_flag_called`` once
    per person, flag, value and groups unless ``send_feature_flag_events=False``.
    """
    return _flag_value(key, distinct_id, groups, person_properties, group_properties, only_evaluate_locally,
                       send_feature_flag_events, disable_geoip, device_id)  # fmt: skip


def _flag_value(key: str, distinct_id: Any, groups: Groups, person_properties: Properties,
                group_properties: GroupProperties, only_evaluate_locally: bool, send_feature_flag_events: bool,
                disable_geoip: Optional[bool], device_id: Optional[str]) -> Optional[FlagValue]:  # fmt: skip
    overridden, value = overridden_flag(key)
    if overridden:
        return value
    read = _flag_read(key, distinct_id, groups, person_properties, group_properties, disable_geoip, device_id)
    if read is None:
        return None
    return _finish_flag(_drive(read, only_evaluate_locally), send_feature_flag_events).value


@_never_raises(None)
def feature_enabled(
    key: str,
    distinct_id: Any = None,
    groups: Groups = None,
    person_properties: Properties = None,
    group_properties: GroupProperties = None,
    only_evaluate_locally: bool = False,
    send_feature_flag_events: bool = True,
    disable_geoip: Optional[bool] = None,
    device_id: Optional[str] = None,
) -> Optional[bool]:
    """Whether flag ``key`` is on for the person (a variant counts as on); None if unknown.

    Same arguments and evaluation as ``get_feature_flag``.
    """
    value = _flag_value(key, distinct_id, groups, person_properties, group_properties,
                        only_evaluate_locally, send_feature_flag_events, disable_geoip, device_id)  # fmt: skip
    return None if value is None else bool(value)


@_never_raises(None)
def get_feature_flag_payload(
    key: str,
    distinct_id: Any = None,
    match_value: Optional[FlagValue] = None,
    groups: Groups = None,
    person_properties: Properties = None,
    group_properties: GroupProperties = None,
    only_evaluate_locally: bool = False,
    send_feature_flag_events: bool = True,
    disable_geoip: Optional[bool] = None,
    device_id: Optional[str] = None,
) -> Any:
    """The payload (decoded JSON) of the flag's value for the person, or None.

    ``match_value`` picks the payload of that value instead of the person's own.
    """
    overridden, payload = overridden_payload(key)
    if overridden:
        return payload
    read = _flag_read(
        key, distinct_id, groups, person_properties, group_properties, disable_geoip, device_id, match_value
    )
    if read is None:
        return None
    return _finish_flag(_drive(read, only_evaluate_locally), send_feature_flag_events).payload


@_never_raises(lambda: {"featureFlags": None, "featureFlagPayloads": None})
def get_all_flags_and_payloads(
    distinct_id: Any = None,
    groups: Groups = None,
    person_properties: Properties = None,
    group_properties: GroupProperties = None,
    only_evaluate_locally: bool = False,
    disable_geoip: Optional[bool] = None,
    device_id: Optional[str] = None,
    flag_keys_to_evaluate: Optional[List[str]] = None,
) -> Dict[str, Any]:
    """``{"featureFlags": {key: value}, "featureFlagPayloads": {key: JSON text}}`` for the person.

    Flags decided locally are answered here; if any is not, one ``/flags`` request answers
    all of them (its answers win). No ``$feature_flag_called`` events, as in PostHog's SDK.
    """
    return _all_flags_and_payloads(distinct_id, groups, person_properties, group_properties, only_evaluate_locally,
                                   disable_geoip, device_id, flag_keys_to_evaluate)  # fmt: skip


def _all_flags_and_payloads(distinct_id: Any, groups: Groups, person_properties: Properties,
                            group_properties: GroupProperties, only_evaluate_locally: bool,
                            disable_geoip: Optional[bool], device_id: Optional[str], flag_keys: Any) -> Dict[str, Any]:  # fmt: skip
    return _all_flags_answer(_all_flags(distinct_id, groups, person_properties, group_properties, only_evaluate_locally,
                                        disable_geoip, device_id, flag_keys))  # fmt: skip


def _all_flags(distinct_id: Any, groups: Groups, person_properties: Properties, group_properties: GroupProperties,
               only_evaluate_locally: bool, disable_geoip: Optional[bool], device_id: Optional[str],
               flag_keys: Any) -> Optional[AllRead]:  # fmt: skip
    call = Call.start(distinct_id, groups, person_properties, group_properties, disable_geoip, device_id)
    return None if call is None else _drive(AllRead(call, _keys(flag_keys)), only_evaluate_locally)


@_never_raises(None)
def get_all_flags(
    distinct_id: Any = None,
    groups: Groups = None,
    person_properties: Properties = None,
    group_properties: GroupProperties = None,
    only_evaluate_locally: bool = False,
    disable_geoip: Optional[bool] = None,
    device_id: Optional[str] = None,
    flag_keys_to_evaluate: Optional[List[str]] = None,
) -> Optional[Dict[str, FlagValue]]:
    """``{key: value}`` for every flag (or those in ``flag_keys_to_evaluate``), as ``get_all_flags_and_payloads``."""
    answer = _all_flags_and_payloads(distinct_id, groups, person_properties, group_properties, only_evaluate_locally,
                                     disable_geoip, device_id, flag_keys_to_evaluate)  # fmt: skip
    return cast(Optional[Dict[str, FlagValue]], answer["featureFlags"])  # _all_flags_answer's: flag values by key


@_never_raises(empty_snapshot)
def evaluate_flags(
    distinct_id: Any = None,
    groups: Groups = None,
    person_properties: Properties = None,
    group_properties: GroupProperties = None,
    only_evaluate_locally: bool = False,
    disable_geoip: Optional[bool] = None,
    flag_keys: Optional[List[str]] = None,
    device_id: Optional[str] = None,
) -> FeatureFlagEvaluations:
    """Every flag (or ``flag_keys``) for one person, as a snapshot: branch on it, pass it to ``capture(flags=...)``.

    At most one ``/flags`` request, for what local evaluation left open. Reading a flag
    from the snapshot reports ``$feature_flag_called`` (once per person, flag, value and
    groups); attaching it to an event reports nothing and asks nothing.
    """
    call = Call.start(distinct_id, groups, person_properties, group_properties, disable_geoip, device_id)
    if call is None:
        return empty_snapshot()
    if flag_keys == []:
        return empty_snapshot(call)
    return _drive(SnapshotRead(call, _keys(flag_keys)), only_evaluate_locally).snapshot()


@_never_raises(False)
def load_feature_flags() -> bool:
    """Load the flag definitions now (at start-up, so no later call waits); True when loaded.

    Needs a personal API key (``POSTHOG_PERSONAL_API_KEY`` / ``personal_api_key=``).
    """
    service = current_service()
    if service is None or service.poller is None:
        warn_limited("flag:no_personal_key", "posthog_otel: load_feature_flags() needs a personal API key: set "
                     "POSTHOG_PERSONAL_API_KEY (or POSTHOG_SECRET_KEY); flags are asked of /flags meanwhile")  # fmt: skip
        return False
    return service.load()


@_never_raises(None)
def feature_flag_definitions() -> Optional[List[Dict[str, Any]]]:
    """The flag definitions loaded for local evaluation (PostHog's format), or None if none are."""
    service = current_service()
    definitions = service.definitions() if service is not None else None
    return None if definitions is None else list(definitions.raw_flags)


# --- asyncio ----------------------------------------------------------------------------------


@_never_raises(None)
async def get_feature_flag_async(
    key: str,
    distinct_id: Any = None,
    groups: Groups = None,
    person_properties: Properties = None,
    group_properties: GroupProperties = None,
    only_evaluate_locally: bool = False,
    send_feature_flag_events: bool = True,
    disable_geoip: Optional[bool] = None,
    device_id: Optional[str] = None,
) -> Optional[FlagValue]:
    """``get_feature_flag`` for asyncio: the network waits in a worker thread, never on the loop."""
    overridden, value = overridden_flag(key)
    if overridden:
        return value
    read = _flag_read(key, distinct_id, groups, person_properties, group_properties, disable_geoip, device_id)
    if read is None:
        return None
    return _finish_flag(await _drive_async(read, only_evaluate_locally), send_feature_flag_events).value


@_never_raises(None)
async def feature_enabled_async(
    key: str,
    distinct_id: Any = None,
    groups: Groups = None,
    person_properties: Properties = None,
    group_properties: GroupProperties = None,
    only_evaluate_locally: bool = False,
    send_feature_flag_events: bool = True,
    disable_geoip: Optional[bool] = None,
    device_id: Optional[str] = None,
) -> Optional[bool]:
    """``feature_enabled`` for asyncio."""
    value = await get_feature_flag_async(key, distinct_id, groups, person_properties, group_properties,
                                         only_evaluate_locally, send_feature_flag_events, disable_geoip, device_id)  # fmt: skip
    return None if value is None else bool(value)


@_never_raises(None)
async def get_feature_flag_payload_async(
    key: str,
    distinct_id: Any = None,
    match_value: Optional[FlagValue] = None,
    groups: Groups = None,
    person_properties: Properties = None,
    group_properties: GroupProperties = None,
    only_evaluate_locally: bool = False,
    send_feature_flag_events: bool = True,
    disable_geoip: Optional[bool] = None,
    device_id: Optional[str] = None,
) -> Any:
    """``get_feature_flag_payload`` for asyncio."""
    overridden, payload = overridden_payload(key)
    if overridden:
        return payload
    read = _flag_read(
        key, distinct_id, groups, person_properties, group_properties, disable_geoip, device_id, match_value
    )
    if read is None:
        return None
    return _finish_flag(await _drive_async(read, only_evaluate_locally), send_feature_flag_events).payload


@_never_raises(lambda: {"featureFlags": None, "featureFlagPayloads": None})
async def get_all_flags_and_payloads_async(
    distinct_id: Any = None,
    groups: Groups = None,
    person_properties: Properties = None,
    group_properties: GroupProperties = None,
    only_evaluate_locally: bool = False,
    disable_geoip: Optional[bool] = None,
    device_id: Optional[str] = None,
    flag_keys_to_evaluate: Optional[List[str]] = None,
) -> Dict[str, Any]:
    """``get_all_flags_and_payloads`` for asyncio."""
    call = Call.start(distinct_id, groups, person_properties, group_properties, disable_geoip, device_id)
    read = (
        None if call is None else await _drive_async(AllRead(call, _keys(flag_keys_to_evaluate)), only_evaluate_locally)
    )
    return _all_flags_answer(read)


@_never_raises(None)
async def get_all_flags_async(
    distinct_id: Any = None,
    groups: Groups = None,
    person_properties: Properties = None,
    group_properties: GroupProperties = None,
    only_evaluate_locally: bool = False,
    disable_geoip: Optional[bool] = None,
    device_id: Optional[str] = None,
    flag_keys_to_evaluate: Optional[List[str]] = None,
) -> Optional[Dict[str, FlagValue]]:
    """``get_all_flags`` for asyncio."""
    answer = await get_all_flags_and_payloads_async(distinct_id, groups, person_properties, group_properties,
                                                     only_evaluate_locally, disable_geoip, device_id,
                                                     flag_keys_to_evaluate)  # fmt: skip
    return cast(Optional[Dict[str, FlagValue]], answer["featureFlags"])  # _all_flags_answer's: flag values by key


@_never_raises(empty_snapshot)
async def evaluate_flags_async(
    distinct_id: Any = None,
    groups: Groups = None,
    person_properties: Properties = None,
    group_properties: GroupProperties = None,
    only_evaluate_locally: bool = False,
    disable_geoip: Optional[bool] = None,
    flag_keys: Optional[List[str]] = None,
    device_id: Optional[str] = None,
) -> FeatureFlagEvaluations:
    """``evaluate_flags`` for asyncio."""
    call = Call.start(distinct_id, groups, person_properties, group_properties, disable_geoip, device_id)
    if call is None:
        return empty_snapshot()
    if flag_keys == []:
        return empty_snapshot(call)
    return (await _drive_async(SnapshotRead(call, _keys(flag_keys)), only_evaluate_locally)).snapshot()
