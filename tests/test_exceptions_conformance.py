"""``capture_exception`` through posthog_otel and through PostHog's own SDK give the same events.

Field by field, frames included (file, function, line, context lines, ``in_app``), as
``tests/test_conformance.py`` compares the other operations: both run the same scenario
against the same loopback server, from the same line of this file, so that even the stack
of an exception that was never raised is the same stack. Differences that must be (uuid,
clock, library name and version, what PostHog's SDK computes with an extra dependency) are
normalised away as there.
"""

from __future__ import annotations

import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator

import posthog_otel

from .test_conformance import NOISE, Reference, normalise, posthog_sdk  # noqa: F401 (a fixture)

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


class ExceptionReference(Reference):
    def __init__(self, url, posthog) -> None:
        super().__init__(url, posthog)
        self.capture_exception = self.client.capture_exception


class FixedIds(IdGenerator):
    """The same trace and span ids for both runs, so that ``$trace_id``/``$span_id`` compare exactly."""

    def generate_span_id(self) -> int:
        return SPAN_ID

    def generate_trace_id(self) -> int:
        return TRACE_ID


def charge(order):
    if order["total"] < 0:
        raise ValueError("negative total: %d" % order["total"])
    return order["total"]


def load_order(orders, key):
    try:
        return orders[key]
    except KeyError as missing:
        raise LookupError("no order %r" % key) from missing


def checked_charge(order):
    __tracebackhide__ = True  # noqa: F841 (pytest's convention, which PostHog's SDK honours)
    return charge(order)


def scenario_hidden_frame(api):
    try:
        checked_charge({"total": -10})
    except ValueError as error:
        api.capture_exception(error, distinct_id="user_9")


def scenario_handled(api):
    try:
        charge({"total": -5})
    except ValueError as error:
        api.capture_exception(error, distinct_id="user_1", properties={"order": 42, "retry": False})


def scenario_current_exception_personless(api):
    try:
        charge({"total": -1})
    except ValueError:
        api.capture_exception(None)  # the one being handled (PostHog's Client needs the argument)


def scenario_chained_from(api):
    try:
        load_order({}, "o-9")
    except LookupError as error:
        api.capture_exception(error, distinct_id="user_2")


def scenario_chained_during_handling(api):
    try:
        try:
            charge({"total": -2})
        except ValueError:
            {}["audit"]
    except KeyError as error:
        api.capture_exception(error, distinct_id="user_3")


def scenario_in_context_with_tags_and_session(api):
    with api.new_context():
        api.identify_context("user_456")
        api.tag("plan", "pro")
        api.tag("region", "eu")
        api.set_context_session("sess-9")
        try:
            charge({"total": -3})
        except ValueError as error:
            api.capture_exception(error, properties={"region": "explicit wins"})


def scenario_with_groups(api):
    try:
        charge({"total": -4})
    except ValueError as error:
        api.capture_exception(error, distinct_id="user_4", groups={"company": "acme"})


def scenario_never_raised(api):
    api.capture_exception(RuntimeError("built, never raised"), distinct_id="user_5")


def scenario_captured_once(api):
    try:
        charge({"total": -6})
    except ValueError as error:
        assert api.capture_exception(error, distinct_id="user_6") is not None
        assert api.capture_exception(error, distinct_id="user_6") is None


def scenario_in_a_recording_span(api):
    tracer = TracerProvider(id_generator=FixedIds()).get_tracer("checkout")
    with tracer.start_as_current_span("charge") as span:
        assert span.is_recording()
        try:
            charge({"total": -7})
        except ValueError as error:
            api.capture_exception(error, distinct_id="user_7")


def scenario_exception_group(api):
    if sys.version_info < (3, 11):
        pytest.skip("exception groups are Python 3.11+")
    errors = []
    for order in ({"total": -8}, {"total": -9}):
        try:
            charge(order)
        except ValueError as error:
            errors.append(error)
    try:
        load_order({}, "o-1")
    except LookupError as error:
        errors.append(error)
    try:
        raise ExceptionGroup("batch failed", errors)  # noqa: F821 (3.11 builtin)
    except ExceptionGroup as group:  # noqa: F821
        api.capture_exception(group, distinct_id="user_8")


SCENARIOS = [value for name, value in sorted(globals().items()) if name.startswith("scenario_")]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__[len("scenario_") :])
def test_same_exception_events_as_posthog_sdk(scenario, server, pipeline, posthog_sdk):
    reference = ExceptionReference(server.url, posthog_sdk)
    events, described = [], []
    for api in (reference, posthog_otel):  # one line for both: never-raised stacks end at the same frame
        scenario(api)
        reference.client.flush()
        pipeline.flush()
        events.append([normalise(e, ours=api is posthog_otel) for e in server.events])
        described.append([sorted(k for k in e["properties"] if k in NOISE) for e in server.events])
        server.reset()
    expected, actual = events
    assert described[0] == described[1]  # the values differ ($lib...), the keys do not: $os, $python_version...
    assert expected, "the reference sent nothing"
    assert [e["event"] for e in expected] == ["$exception"] * len(expected)
    assert actual == expected


def test_the_comparison_sees_frames(server, pipeline, posthog_sdk):
    """The comparison is not blind to frames: a frame changed on one side fails it."""
    reference = ExceptionReference(server.url, posthog_sdk)
    scenario_handled(reference)
    reference.client.flush()
    expected = [normalise(e, ours=False) for e in server.events]
    server.reset()
    scenario_handled(posthog_otel)
    pipeline.flush()
    actual = [normalise(e, ours=True) for e in server.events]
    assert actual == expected
    actual[0]["properties"]["$exception_list"][0]["stacktrace"]["frames"][-1]["lineno"] += 1
    assert actual != expected
