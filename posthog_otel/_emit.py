"""The operations: ``set``, ``set_once``, ``group_identify``, ``alias``, ``capture``.

Each call resolves identity from its arguments and the current context scope, takes a
sanitized snapshot of the properties, and emits one OpenTelemetry log record following
``_schema``.  Everything else (PostHog's payload shapes, ``$lib``, personless ids,
encoding, delivery) happens later on the exporter's thread, so the caller pays only for
the snapshot and ``Logger.emit``.

No function here raises: every public one runs under ``_guard.guarded``.  Input that
cannot be sent as given is dropped with a warning (rate-limited per call and reason) and
counted; the return value (the operation's uuid, or None) tells the caller what happened,
and a returned uuid is always the one PostHog receives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Dict, FrozenSet, Optional, Tuple

from . import _personless, _state
from . import _schema as schema
from ._context import current_scope, tags_of
from ._emitter import _Emitter, emitter, module_target
from ._guard import Dropped, guarded
from ._log import count_drop, warn_limited
from ._operation import Timestamp, _add_groups, _finish, _id, _is_map, _resolve
from ._properties import sanitize_properties
from ._text import Unusable, as_text, describe

_CAPTURE_NESTED = frozenset({"$set", "$set_once", "$feature_flag_payload"})

# --- the operations ------------------------------------------------------------------


class Operations:
    """The five operations, writing to one emitter: the module's functions are the methods of
    ``default``; each ``Client`` is an ``Operations`` with an emitter (and flags) of its own."""

    def __init__(self, emitter: _Emitter) -> None:
        self._emitter = emitter

    def _flag_service(self) -> Any:
        """The flag service ``send_feature_flags`` evaluates with (None: the module's; a ``Client``
        overrides it with its own)."""
        routed = _state.default_client  # the module's: ``posthog_otel.default_client = ...``
        return routed._flag_service() if routed is not None else None

    def route(self, client: Optional[Operations]) -> None:
        """The module's operations (``default``): write to ``client``'s pipeline instead (None: back
        to the module's emitter). The routed client is ``_state.default_client``."""
        _state.default_client = client
        self._emitter = module_target()

    @guarded("set")
    def set(
        self,
        distinct_id: Any = None,
        properties: Optional[Mapping[str, Any]] = None,
        timestamp: Timestamp = None,
        uuid: Any = None,
        disable_geoip: Optional[bool] = None,
    ) -> Optional[str]:
        """Set properties on a person, overwriting existing values.

        ``set('user123', {...})``, ``set({...})`` (the context's person) or keywords.
        Context tags are folded into the properties (explicit properties win).  Returns the
        operation's uuid, or None when nothing was sent (no distinct id, no properties).
        """
        return _person_update(self._emitter, schema.SET, "set", distinct_id, properties, timestamp, uuid, disable_geoip)

    @guarded("set_once")
    def set_once(
        self,
        distinct_id: Any = None,
        properties: Optional[Mapping[str, Any]] = None,
        timestamp: Timestamp = None,
        uuid: Any = None,
        disable_geoip: Optional[bool] = None,
    ) -> Optional[str]:
        """Set properties on a person only where they are not set yet.  Otherwise as ``set``."""
        return _person_update(
            self._emitter, schema.SET_ONCE, "set_once", distinct_id, properties, timestamp, uuid, disable_geoip
        )

    @guarded("unset")
    def unset(
        self,
        distinct_id: Any = None,
        properties: Any = None,
        timestamp: Timestamp = None,
        uuid: Any = None,
        disable_geoip: Optional[bool] = None,
    ) -> Optional[str]:
        """Remove properties from a person (PostHog's ``$unset``; posthog-node's ``unsetPersonProperties``).

        ``unset('user123', ['plan', 'email'])``, ``unset('user123', 'plan')``, or ``unset(['plan'])``
        for the context's person. Returns the uuid, or None when nothing was sent (no distinct
        id, no usable names).
        """
        from ._unset import unset

        return unset(self._emitter, distinct_id, properties, timestamp, uuid, disable_geoip)

    @guarded("group_identify")
    def group_identify(
        self,
        group_type: Any,
        group_key: Any,
        properties: Optional[Mapping[str, Any]] = None,
        timestamp: Timestamp = None,
        uuid: Any = None,
        disable_geoip: Optional[bool] = None,
        distinct_id: Any = None,
    ) -> Optional[str]:
        """Set properties on a group (``group_identify('company', 'acme', {...})``).

        Without a distinct id (argument or context) PostHog's rule applies: the event is sent
        under a random one.  Returns the uuid, or None when the group type or key is missing.
        """
        group_type = _id(group_type, "group type")
        group_key = _id(group_key, "group key")
        if not group_type or not group_key:
            raise Dropped("no_group", "needs a group type and a group key")
        scope = current_scope()
        attributes: Dict[str, Any] = {schema.GROUP_TYPE: group_type, schema.GROUP_KEY: group_key}
        person = _resolve(distinct_id, scope)
        if person is not None:
            attributes[schema.DISTINCT_ID] = person
        body = sanitize_properties(properties, what="group_identify() properties")
        return _finish(
            self._emitter,
            schema.GROUP_IDENTIFY,
            "group_identify",
            attributes,
            body,
            scope,
            timestamp,
            uuid,
            disable_geoip,
        )

    @guarded("alias")
    def alias(
        self,
        previous_id: Any,
        distinct_id: Any = None,
        timestamp: Timestamp = None,
        uuid: Any = None,
        disable_geoip: Optional[bool] = None,
    ) -> Optional[str]:
        """Link ``previous_id`` (e.g. an anonymous id) to ``distinct_id`` (the identified person).

        ``distinct_id`` falls back to the context's person.  Returns the uuid, or None when
        either id is missing.
        """
        previous = _id(previous_id, "previous_id")
        if not previous:
            raise Dropped("no_distinct_id", "needs a previous_id")
        scope = current_scope()
        person = _resolve(distinct_id, scope)
        if person is None:
            raise Dropped(
                "no_distinct_id", "needs a distinct_id (argument or identify_context())%s", _personless.hint(scope)
            )
        attributes = {schema.DISTINCT_ID: person, schema.PREVIOUS_ID: previous}
        return _finish(self._emitter, schema.ALIAS, "alias", attributes, None, scope, timestamp, uuid, disable_geoip)

    @guarded("capture")
    def capture(
        self,
        *args: Any,
        distinct_id: Any = None,
        event: Optional[str] = None,
        properties: Optional[Mapping[str, Any]] = None,
        groups: Optional[Mapping[str, Any]] = None,
        timestamp: Timestamp = None,
        uuid: Any = None,
        disable_geoip: Optional[bool] = None,
        flags: Any = None,
        send_feature_flags: Any = False,
    ) -> Optional[str]:
        """Capture an event, optionally attached to groups.

        Call shapes: ``capture('dashboard_viewed')`` (the context's person),
        ``capture('user123', 'signup', {...}, groups={'company': 'acme'})``,
        ``capture('signup', {...})`` and ``capture('signup', distinct_id='user123', ...)``.
        Without any distinct id the event is personless, as in PostHog's SDK.
        ``flags=evaluate_flags(...)`` attaches that snapshot's ``$feature/<key>`` values;
        ``send_feature_flags=True`` (PostHog's older way, which asks for the flags on this
        thread) evaluates them for the event's person and attaches them the same way.
        """
        if (
            len(args) == 3
            and event is None
            and distinct_id is None
            and properties is None
            and type(args[0]) is str
            and type(args[1]) is str
            and args[1]
            and args[1].isascii()
            and type(args[2]) is dict
        ):  # capture('user123', 'signup', {...}), the common shape, sorted without a call
            distinct_id, name, properties = args
        else:
            distinct_id, name, properties = _capture_arguments(args, distinct_id, event, properties)
        scope = current_scope()
        if type(distinct_id) is str and distinct_id and distinct_id.isascii():
            person: Optional[str] = distinct_id
        else:
            person = _resolve(distinct_id, scope)
        if flags is None and send_feature_flags and person is not None and self._emitter.blocked is None:
            flags = _feature_flags_for_capture(self._flag_service(), person, groups, disable_geoip, send_feature_flags)
        if flags is not None:
            from ._flags.snapshot import attach_flags

            properties = attach_flags(flags, properties)
        attributes: Dict[str, Any] = {schema.EVENT: name}
        if person is not None:
            attributes[schema.DISTINCT_ID] = person
        else:
            _personless.note("capture", scope)
        if type(properties) is not dict or "$groups" in properties:  # a $groups property joins groups=
            properties, named = _groups_property(properties)
            if named is not None:
                _add_groups(attributes, named)
        if groups is not None:  # groups= last: its key wins for a type named in both
            _add_groups(attributes, groups)
        if scope is None:
            body = sanitize_properties(properties, what="capture() properties", keep_nested=_CAPTURE_NESTED)
        else:
            tags = tags_of(scope)
            body = _with_tags(properties, tags, "capture() properties", _CAPTURE_NESTED)
            body["$context_tags"] = list(tags)  # tag() keeps text keys only
        return _finish(
            self._emitter, schema.CAPTURE, "capture", attributes, body, scope, timestamp, uuid, disable_geoip
        )

    @guarded("capture_exception")
    def capture_exception(
        self,
        exception: Any = None,
        distinct_id: Any = None,
        properties: Optional[Mapping[str, Any]] = None,
        *,
        timestamp: Timestamp = None,
        uuid: Any = None,
        groups: Optional[Mapping[str, Any]] = None,
        disable_geoip: Optional[bool] = None,
        flags: Any = None,
    ) -> Optional[str]:
        """Send ``exception`` (by default the one being handled) to PostHog error tracking.

        ``capture_exception(e)``, ``capture_exception()`` inside ``except``, or an
        ``sys.exc_info()`` tuple; ``distinct_id`` falls back to the context's person (none:
        personless, as PostHog's SDK), and the context's session and tags apply. Returns the
        event's uuid, or None when nothing was sent: no exception, one already captured, or
        one raised at the same place too often (``drop_counts()["exception_rate_limited"]``).
        """
        from ._exceptions.capture import How, capture

        return capture(exception, distinct_id, properties, timestamp, uuid, groups, disable_geoip, flags, How(),
                       self._emitter)  # fmt: skip


def _feature_flags_for_capture(service: Any, person: str, groups: Any, disable_geoip: Any, options: Any) -> Any:
    """``capture(send_feature_flags=...)``: a snapshot of every flag for the event's person, as
    PostHog's SDK takes it (``True``, or its options map), never reporting ``$feature_flag_called``."""
    from ._flags import api
    from ._flags.service import using

    if options is True:
        options = {}
    elif not isinstance(options, Mapping):
        raise Dropped("invalid_argument", "send_feature_flags must be true/false or a map of options, not %s",
                      describe(options))  # fmt: skip
    with using(service):
        return api.evaluate_flags(
            person,
            groups=groups if _is_map(groups) else None,
            person_properties=options.get("person_properties"),
            group_properties=options.get("group_properties"),
            only_evaluate_locally=bool(options.get("only_evaluate_locally")),
            disable_geoip=disable_geoip,
            flag_keys=options.get("flag_keys_filter"),
        )


#: The module's operations (``posthog_otel.set``...).
default = Operations(emitter)
set = default.set
set_once = default.set_once
group_identify = default.group_identify
alias = default.alias
capture = default.capture
capture_exception = default.capture_exception
unset = default.unset
_state.module_capture = capture  # the flags' $feature_flag_called events go through it


# --- shared steps -----------------------------------------------------------------------


def _person_update(
    target: _Emitter,
    operation: str,
    call: str,
    distinct_id: Any,
    properties: Any,
    timestamp: Timestamp,
    uuid: Any,
    disable_geoip: Optional[bool],
) -> Optional[str]:
    if properties is None and distinct_id is not None and _is_map(distinct_id):
        distinct_id, properties = None, distinct_id  # set({...}): the context's person
    scope = current_scope()
    if type(distinct_id) is str and distinct_id and distinct_id.isascii():
        person: Optional[str] = distinct_id  # the common case, decided here: no call
    else:
        person = _resolve(distinct_id, scope)
    if person is None:
        raise Dropped(
            "no_distinct_id", "without a distinct_id (argument or identify_context()) it does nothing%s",
            _personless.hint(scope),
        )  # fmt: skip
    if scope is None:
        body = sanitize_properties(properties, what=_WHAT[call])
    else:
        body = _with_tags(properties, tags_of(scope), _WHAT[call])
    if not body:
        raise Dropped("no_properties", "without properties it does nothing")
    attributes = {schema.DISTINCT_ID: person}
    return _finish(target, operation, call, attributes, body, scope, timestamp, uuid, disable_geoip)


#: The text warnings name a call's properties with, built once.
_WHAT = {call: "%s() properties" % call for call in ("set", "set_once")}


def _capture_arguments(args: Tuple[Any, ...], distinct_id: Any, event: Any, properties: Any) -> Tuple[Any, str, Any]:
    """Sort positional arguments into (distinct_id, event, properties), seed and SDK shapes alike."""
    positional = list(args)
    if len(positional) > 3:
        raise Dropped(
            "invalid_arguments", "takes at most 3 positional arguments (distinct_id, event, properties), got %d",
            len(positional),
        )  # fmt: skip
    if event is None:
        if len(positional) >= 2 and not _is_map(positional[1]):
            distinct_id, event = positional[0], positional[1]  # capture(distinct_id, event, ...)
            positional = positional[2:]
        elif positional:
            event = positional[0]  # capture(event) or capture(event, properties)
            positional = positional[1:]
    elif positional and distinct_id is None:
        distinct_id = positional.pop(0)  # capture('user123', event='signup')
    if positional:
        if properties is not None or len(positional) > 1:
            raise Dropped(
                "invalid_arguments", "positional arguments %s do not fit (distinct_id, event, properties) beside "
                "the keywords given", describe(tuple(args)),
            )  # fmt: skip
        properties = positional[0]
    return distinct_id, _event_name(event), properties


def _event_name(event: Any) -> str:
    if type(event) is str and event.isascii() and event:
        return event
    if event is None:
        raise Dropped("no_event", "needs an event name, as capture(event) or capture(distinct_id, event, properties)")
    if not isinstance(event, str):
        raise Dropped(
            "invalid_event", "the event name must be a string, not a %s (%s)", type(event).__name__, describe(event)
        )
    try:
        name = as_text(event)
    except Unusable as problem:
        raise Dropped("invalid_event", "the event name %s %s", describe(event), problem) from None
    if not name:
        raise Dropped("invalid_event", "the event name is empty")
    return name


def _groups_property(properties: Any) -> Tuple[Any, Any]:
    """(properties, the groups of a ``$groups`` property or None): PostHog reads ``$groups`` as
    the event's groups, so it joins ``groups=`` instead of being flattened to ``$groups.<type>``
    (PostHog's SDK lets ``groups=`` replace it whole; here ``groups=`` wins type by type)."""
    if type(properties) is dict:
        if "$groups" not in properties:
            return properties, None
    elif not _is_map(properties) or "$groups" not in properties:
        return properties, None
    named = properties["$groups"]
    properties = {key: value for key, value in properties.items() if key != "$groups"}
    if not _is_map(named):
        count_drop("invalid_groups")
        warn_limited("invalid_groups:capture:property", "posthog_otel: capture(): the $groups property must be a map "
                     "of group type to group key, not %s; left out", describe(named))  # fmt: skip
        return properties, None
    return properties, named


def _with_tags(
    properties: Any, tags: Optional[Dict[str, Any]], what: str, keep_nested: FrozenSet[str] = frozenset()
) -> Dict[str, Any]:
    """The body: sanitized properties over the context's tags (explicit properties win)."""
    if tags:
        if properties is None:
            properties = tags
        elif type(properties) is dict:
            properties = {**tags, **properties}
        else:  # another kind of map (or not a map): each side sanitized on its own
            body = sanitize_properties(tags, what=what, keep_nested=keep_nested)
            body.update(sanitize_properties(properties, what=what, keep_nested=keep_nested))
            return body
    return sanitize_properties(properties, what=what, keep_nested=keep_nested)
