"""No flag definition and no property value makes an evaluation take more than a bounded time
(issue 18): regex filters run in linear time under a budget, cohorts are memoised, one
unreadable flag costs only itself, and the project key never reaches urllib3's DEBUG log.

A regex that backtracks in ``re`` holds the GIL: a thread or a socket timeout in this process
could not even notice. So what used to hang runs in a child process, under a timeout."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from posthog_otel import _log
from posthog_otel._flags import regex as regex_module
from posthog_otel._flags.definitions import Definitions
from posthog_otel._flags.errors import Reason, Undecidable
from posthog_otel._flags.evaluator import Evaluation
from posthog_otel._flags.nfa import Automaton, Budget
from posthog_otel._flags.poller import DefinitionsPoller
from posthog_otel._flags.regex import compile_rust_regex

from .conftest import API_KEY
from .support import child_env
from .test_flags import PERSONAL_KEY, FlagServer
from .test_flags_evaluator import cohort, defs, flag, person, when

SAFETY = 20  # seconds: the patterns below ran for minutes (or 2**n) before

URL = "https://example.com/landing?" + "&".join("param%d=value%d" % (n, n) for n in range(160))
#: (pattern, value, PostHog's answer): each passes the common-core check, each backtracked for minutes.
CATASTROPHIC = [
    ("^(a|a)*$", "a" * 40 + "b", False),
    ("(a|a)*$", "a" * 27, True),
    ("(x|x|x)*y", "x" * 30, False),
    (".*utm.*source.*google.*campaign.*=", URL, False),
    ("^(\\w|\\d)*$", "1" * 40 + "!", False),
]


@pytest.fixture(params=["re2", "automaton"])
def engine(request, monkeypatch):
    """Regexes compiled for RE2 (when installed), or for the pure-Python automaton."""
    if request.param == "re2":
        if regex_module._re2 is None:
            pytest.skip("google-re2 is not installed (the [re2] extra)")
    else:
        monkeypatch.setattr(regex_module, "_re2", None)
    return request.param


def regex_flag(*patterns):
    return flag("f", when(*(person("url", "regex", p) for p in patterns)))


def evaluate(definitions, properties):
    loaded = Definitions.from_response(definitions)
    return Evaluation(loaded, "user-1", {}, {}).value(loaded.by_key["f"], properties)


@pytest.mark.parametrize("pattern, value, expected", CATASTROPHIC)
def test_backtracking_patterns_are_answered_in_linear_time(engine, pattern, value, expected):
    assert evaluate(defs(regex_flag(pattern)), {"url": value}) is expected


def test_in_a_child_process_they_finish_where_re_would_not(tmp_path):
    """The same cases with nothing to stop a hang but the child's timeout."""
    script = textwrap.dedent(
        """
        import json, sys
        from posthog_otel._flags.definitions import Definitions
        from posthog_otel._flags.evaluator import Evaluation
        for pattern, value, expected in json.load(sys.stdin):
            flag = {"key": "f", "active": True, "filters": {"groups": [{"rollout_percentage": 100, "properties": [
                {"key": "url", "operator": "regex", "value": pattern, "type": "person"}]}]}}
            loaded = Definitions.from_response({"flags": [flag]})
            assert Evaluation(loaded, "u", {}, {}).value(loaded.by_key["f"], {"url": value}) is expected, pattern
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps(CATASTROPHIC), env=child_env(),
                          capture_output=True, text=True, timeout=SAFETY)  # fmt: skip
    assert done.stdout.strip() == "ok", done.stderr


def test_past_the_budget_a_regex_is_inconclusive_not_slow(monkeypatch):
    """The automaton, on a value long enough to spend the whole budget: undecidable (PostHog
    decides), after at most REGEX_BUDGET steps, however many filters the flag has."""
    monkeypatch.setattr(regex_module, "_re2", None)
    long_value = "ab" * 100_000
    with pytest.raises(Undecidable) as problem:
        evaluate(defs(regex_flag(*["(a|b)*c(a|b)*%d" % n for n in range(50)])), {"url": long_value})
    assert problem.value.reason is Reason.UNSUPPORTED_DEFINITION and "inconclusive" in problem.value.why


def test_the_budget_is_renewed_for_each_evaluation(monkeypatch):
    monkeypatch.setattr(regex_module, "_re2", None)
    loaded = Definitions.from_response(defs(regex_flag("(a|b)*c")))
    value = {"url": "ab" * 20_000 + "c"}  # about a fifth of the budget each time
    for _ in range(10):
        assert Evaluation(loaded, "u", {}, {}).value(loaded.by_key["f"], value) is True


def test_a_pattern_too_large_for_the_automaton_is_left_to_posthog(monkeypatch):
    monkeypatch.setattr(regex_module, "_re2", None)
    with pytest.raises(Undecidable) as problem:
        evaluate(defs(regex_flag("(ab){9000}c")), {"url": "ab"})
    assert problem.value.reason is Reason.UNSUPPORTED_DEFINITION


PATTERN_ATOMS = st.sampled_from(["a", "b", ".", "[ab]", "[^a]", "\\d", "\\w", "\\s", "x", "^", "$"])


@st.composite
def core_patterns(draw, depth=0):
    pieces = []
    for _ in range(draw(st.integers(0, 4))):
        if depth < 2 and draw(st.booleans()):
            inner = "|".join(draw(st.lists(core_patterns(depth + 1), min_size=1, max_size=3)))
            piece = "(" + inner + ")"
        else:
            piece = draw(PATTERN_ATOMS)
        if piece not in ("^", "$"):
            piece += draw(st.sampled_from(["", "", "*", "+", "?", "{2}", "{1,3}", "{2,}", "*?", "{0,1}"]))
        pieces.append(piece)
    return "".join(pieces)


@settings(max_examples=400, deadline=None)
@given(core_patterns(), st.text(alphabet="ab1 x\n\x0bé", max_size=12))
def test_the_automaton_and_re2_answer_as_re_does(pattern, text):
    """On patterns ``re`` runs in good time, all three engines agree."""
    try:
        compiled = compile_rust_regex(pattern)
    except Undecidable:
        return
    if compiled is None:
        return
    expected = compiled.compiled.search(text) is not None
    assert Automaton(compiled.compiled.pattern).search(text, Budget(10**7)) is expected
    if compiled.re2 is not None and regex_module._re2_agrees(compiled, text, text.isascii()):
        assert (compiled.re2.search(text) is not None) is expected


# --- cohorts ------------------------------------------------------------------------------------


def nested_cohorts(depth):
    """Cohort n is in cohort n-1 OR in cohort n-1 again: 2**depth evaluations without memory."""
    cohorts = {"0": {"type": "OR", "values": [{"type": "AND", "values": [person("plan", "exact", "pro")]}]}}
    for n in range(1, depth + 1):
        previous = {"key": "id", "type": "cohort", "value": n - 1, "negation": False}
        cohorts[str(n)] = {"type": "OR", "values": [previous, dict(previous)]}
    return cohorts


def test_nested_cohorts_are_evaluated_once_each():
    definitions = defs(flag("f", when(cohort(40))), cohorts=nested_cohorts(40))
    assert evaluate(definitions, {"plan": "pro"}) is True
    assert evaluate(definitions, {"plan": "free"}) is False


def test_nested_cohorts_in_a_child_process_finish():
    script = textwrap.dedent(
        """
        import json, sys
        from posthog_otel._flags.definitions import Definitions
        from posthog_otel._flags.evaluator import Evaluation
        loaded = Definitions.from_response(json.load(sys.stdin))
        print(Evaluation(loaded, "u", {}, {}).value(loaded.by_key["f"], {"plan": "free"}))
        """
    )
    definitions = defs(flag("f", when(cohort(30))), cohorts=nested_cohorts(30))
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps(definitions), env=child_env(),
                          capture_output=True, text=True, timeout=SAFETY)  # fmt: skip
    assert done.stdout.strip() == "False", done.stderr


def test_an_undecidable_cohort_stays_undecidable_when_remembered():
    definitions = defs(flag("f", when(cohort(3))), cohorts=nested_cohorts(3))
    with pytest.raises(Undecidable) as problem:
        evaluate(definitions, {})  # plan not given
    assert problem.value.reason is Reason.MISSING_CONTEXT


# --- one unreadable flag, and the key at urllib3's DEBUG ----------------------------------------------


@pytest.fixture
def flag_server():
    good = flag("good", when(rollout=100))
    server = FlagServer({"flags": [good, "not a flag", {"key": ["a", "list"], "active": True}, 7],
                         "group_type_mapping": {}, "cohorts": {}})  # fmt: skip
    yield server
    server.close()


def test_one_unreadable_flag_leaves_the_others_loaded(flag_server, caplog):
    polling = DefinitionsPoller(flag_server.url, API_KEY, PERSONAL_KEY, interval=3600)
    try:
        polling.poll()
        assert polling.definitions is not None and [f.key for f in polling.definitions.flags] == ["good"]
        assert _log.drop_counts()["unreadable_flag_definition"] == 3
        assert "3 flag definition(s)" in caplog.text and "the other 1 are evaluated locally" in caplog.text
        assert "flag #1: it is not an object" in caplog.text and "its key is not text" in caplog.text
    finally:
        polling.stop()


def test_urllib3_debug_lines_show_the_project_key_redacted(flag_server, caplog):
    polling = DefinitionsPoller(flag_server.url, API_KEY, PERSONAL_KEY, interval=3600)
    try:
        with caplog.at_level(logging.DEBUG, logger="urllib3"):
            polling.poll()
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
        assert any("/flags/definitions?token=phc_..." in line for line in lines), lines
        assert API_KEY not in caplog.text and PERSONAL_KEY not in caplog.text
    finally:
        polling.stop()


# --- the local server answers while a flag evaluation is attacked ------------------------------------


def test_the_local_server_answers_flags_and_batches_while_regexes_attack(tmp_path):
    """One POST /flags/ with a backtracking pattern froze the local server for a minute. The
    server runs in a child process: its frozen GIL must not freeze the test's clock."""
    definitions = defs(regex_flag("^(a|a)*$"), flag("plain", when(rollout=100)))
    (tmp_path / "flags.json").write_text(json.dumps(definitions))
    script = textwrap.dedent(
        """
        import json, sys
        from posthog_otel._local.server import LocalServer
        from posthog_otel._local.store import Store
        server = LocalServer(Store(sys.argv[1]), flags=json.load(open(sys.argv[2])))
        print(server.url, flush=True)
        server.serve_forever()
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "db.sqlite3"), str(tmp_path / "flags.json")],
                             env=child_env(), stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        url = child.stdout.readline().strip()
        attack = {"api_key": API_KEY, "distinct_id": "u", "person_properties": {"url": "a" * 60 + "b"}}
        attackers = [threading.Thread(target=_post_quietly, args=(url + "/flags/?v=4", attack)) for _ in range(4)]
        for thread in attackers:
            thread.start()
        answer = requests.post(url + "/flags/?v=4", json=attack, timeout=SAFETY)
        assert answer.json()["flags"]["f"]["enabled"] is False
        batch = {"api_key": API_KEY, "batch": [{"event": "e", "distinct_id": "u"}]}
        assert requests.post(url + "/batch/", json=batch, timeout=SAFETY).status_code == 200
        for thread in attackers:
            thread.join(SAFETY)
    finally:
        child.kill()
        child.wait(10)


def _post_quietly(url, body):
    try:
        requests.post(url, json=body, timeout=SAFETY)
    except requests.RequestException:
        pass
