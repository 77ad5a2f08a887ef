"""The context helpers: new_context, identify_context, set_context_session, tag, get_*.

No helper raises for any value; a value that cannot be used is said, and the operations
that would have used it are dropped and counted, never sent under someone else's id.
"""

from __future__ import annotations

import logging

import pytest

import posthog_otel as posthog


class Hostile:
    """A value whose str, repr, hash, bool and eq all raise."""

    def __str__(self):
        raise RuntimeError("str")

    __repr__ = __str__

    def __hash__(self):
        raise RuntimeError("hash")

    def __bool__(self):
        raise RuntimeError("bool")

    def __eq__(self, other):
        raise RuntimeError("eq")


def sent(server, pipeline):
    pipeline.flush()
    return server.events


@pytest.mark.parametrize(
    "value",
    [Hostile(), "user\udcff", 10**5000],
    ids=["raising", "surrogate", "unprintable-int"],
)
def test_identify_context_refuses_an_unusable_id_and_drops_what_would_use_it(value, server, pipeline, caplog):
    with posthog.new_context():
        posthog.identify_context("parent-user")
        with posthog.new_context():
            posthog.identify_context(value)  # must not raise
            assert posthog.get_context_distinct_id() is None
            assert posthog.set({"a": 1}) is None
            assert posthog.capture("viewed") is None  # not personless either: the caller meant a person
            assert posthog.alias("anon") is None
            assert posthog.set("explicit", {"a": 1}) is not None  # an explicit id still wins
        assert posthog.set({"a": 1}) is not None
    assert [e["distinct_id"] for e in sent(server, pipeline)] == ["explicit", "parent-user"]
    assert posthog.drop_counts() == {"invalid_id": 3}
    assert "identify_context(): the distinct id" in caplog.text


def test_identify_context_none_clears_and_inherits(server, pipeline):
    with posthog.new_context():
        posthog.identify_context("parent-user")
        with posthog.new_context():
            posthog.identify_context("child")
            posthog.identify_context(None)
            assert posthog.get_context_distinct_id() == "parent-user"


@pytest.mark.parametrize("value", [Hostile(), "s\ud800"], ids=["raising", "surrogate"])
def test_set_context_session_refuses_an_unusable_id(value, server, pipeline, caplog):
    with posthog.new_context():
        posthog.set_context_session("outer-session")
        with posthog.new_context():
            posthog.identify_context("u")
            posthog.set_context_session(value)
            assert posthog.get_context_session_id() is None
            uuid = posthog.capture("viewed")
    (event,) = sent(server, pipeline)
    assert event["uuid"] == uuid
    assert "$session_id" not in event["properties"]  # not the outer session, which is another one
    assert posthog.drop_counts() == {"invalid_session_id": 1}
    assert "set_context_session(): the session id" in caplog.text


@pytest.mark.parametrize(
    "key, name",
    [([1, 2], "[1, 2]"), ({"a": 1}, "{'a': 1}"), (("t",), "('t',)"), (7, "7"), (None, "None")],
)
def test_tag_keys_become_text_like_property_keys(key, name, server, pipeline):
    with posthog.new_context():
        posthog.identify_context("u")
        posthog.tag(key, "v")
        assert posthog.get_tags() == {name: "v"}
        posthog.capture("viewed")
    (event,) = sent(server, pipeline)
    assert event["properties"][name] == "v"
    assert event["properties"]["$context_tags"] == [name]


@pytest.mark.parametrize("key", [Hostile(), "k\udc80"], ids=["raising", "surrogate"])
def test_tag_with_an_unusable_key_is_dropped_and_counted(key, server, pipeline, caplog):
    with posthog.new_context():
        posthog.identify_context("u")
        posthog.tag(key, "v")
        posthog.tag("ok", 1)
        assert posthog.get_tags() == {"ok": 1}
        posthog.capture("viewed")
    (event,) = sent(server, pipeline)
    assert event["properties"]["$context_tags"] == ["ok"]
    assert posthog.drop_counts() == {"invalid_property": 1}
    assert "tag(): the key" in caplog.text


def test_tag_values_follow_the_property_rules_per_operation(server, pipeline):
    with posthog.new_context():
        posthog.identify_context("u")
        posthog.tag("bad", "x\udcff")
        posthog.tag("good", 1)
        posthog.set({"plan": "pro"})
        posthog.capture("viewed")
    person, event = sent(server, pipeline)
    assert person["$set"] == {"good": 1, "plan": "pro"}
    assert event["properties"]["good"] == 1 and "bad" not in event["properties"]
    assert posthog.drop_counts() == {"invalid_property": 2}  # once per operation that carried it


@pytest.mark.parametrize("fresh", [Hostile(), [1, 2]], ids=["raising", "list"])
def test_new_context_with_an_unreadable_fresh_never_raises(fresh, server, pipeline, caplog):
    with posthog.new_context():
        posthog.identify_context("outer")
        with posthog.new_context(fresh=fresh):
            posthog.tag("inner", 1)
        assert posthog.get_context_distinct_id() == "outer"
        assert posthog.get_tags() == {}
    if isinstance(fresh, Hostile):
        assert "new_context(fresh=" in caplog.text


def test_new_context_with_a_hostile_fresh_is_fresh(caplog):
    with posthog.new_context():
        posthog.identify_context("outer")
        with posthog.new_context(fresh=Hostile()):
            assert posthog.get_context_distinct_id() is None  # nothing inherited by mistake


def test_exceptions_of_the_block_pass_through_and_the_scope_closes():
    with pytest.raises(KeyError):
        with posthog.new_context():
            posthog.identify_context("u")
            raise KeyError("app error")
    assert posthog.get_context_distinct_id() is None


def test_helpers_outside_a_context_warn_once_per_helper(caplog):
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    for _ in range(3):
        posthog.identify_context("u")
        posthog.tag("k", "v")
        posthog.set_context_session("s")
    assert caplog.text.count("identify_context() was called outside") == 1
    assert caplog.text.count("tag() was called outside") == 1
    assert caplog.text.count("set_context_session() was called outside") == 1


def test_getters_outside_any_context():
    assert posthog.get_context_distinct_id() is None
    assert posthog.get_context_session_id() is None
    assert posthog.get_tags() == {}


def test_explicit_properties_win_over_tags_whatever_the_map(server, pipeline):
    class Properties(dict):  # not a plain dict: sanitized on its own, then laid over the tags
        pass

    with posthog.new_context():
        posthog.identify_context("u")
        posthog.tag("plan", "from-tag")
        posthog.tag("seen", 1)
        posthog.set({"plan": "explicit"})
        posthog.capture("viewed", Properties(plan="explicit"))
    person, event = sent(server, pipeline)
    assert person["$set"] == {"plan": "explicit", "seen": 1}
    assert (event["properties"]["plan"], event["properties"]["seen"]) == ("explicit", 1)


def test_closing_after_other_code_restored_an_earlier_context_undoes_nothing_twice():
    """Signal-based instrumentations (Celery's OTel one) attach and detach around ours in
    an order we do not control: theirs may restore the context from before both first."""
    from opentelemetry import context

    from posthog_otel._context import enter_scope, exit_scope

    before = context.get_current()
    theirs = context.attach(context.set_value("their-span", "span"))
    ours = enter_scope(fresh=True)
    posthog.identify_context("task-user")
    context.detach(theirs)  # theirs ends first: back to before both
    exit_scope(ours)
    assert context.get_current() == before  # not their context brought back by ours
    assert posthog.get_context_distinct_id() is None
