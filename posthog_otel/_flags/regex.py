"""``regex`` / ``not_regex`` filters: the patterns run here exactly as PostHog runs them, in linear time.

PostHog evaluates regex filters with Rust's regex engines. Python's ``re`` agrees with
them on a common core only, so a pattern outside that core is left to PostHog
(``Undecidable``: the flag is asked of ``/flags``) rather than answered differently.
Outside the core: inline flags and lookarounds (``(?i)``, ``(?=``), word boundaries
(``\\b``, ``\\<``), nested or empty classes, class set operations (``&&``, ``--``,
``~~``), ranges with a shorthand end (``[\\d-z]``), escapes of letters or digits other
than ``\\d\\D\\s\\S\\w\\W\\b\\f\\n\\r\\t\\xHH``, quantified groups that are quantified again
(``(a+)+``), and possessive-looking runs (``a{2}+``, ``a*+``). ``$`` is made strict (it
matches only at the very end, as in Rust). A pattern ``re`` itself rejects never matches.

Some inputs are also left to PostHog: a value ending in a newline for a pattern with
``$`` and repetition, and non-ASCII values where Python and Rust disagree on ``\\w``
or ``\\s``.

**Linear time.** ``re`` backtracks, and some patterns of the core take exponential time
(``(a|a)*$``) or a high power of the value's length (``.*a.*b.*c.*d``), holding the GIL
all along. So ``re`` runs only patterns without repetition or alternation (linear for it
too); the others run on a linear-time engine: RE2 (``google-re2``, the ``[re2]`` extra)
when it is installed and agrees with Rust on the input (below), else ``nfa.Automaton``, a
pure-Python automaton. Every search spends from the evaluation's budget (``Budget``,
``REGEX_BUDGET`` steps, renewed for each evaluation: one call): once it is spent, a regex
filter is inconclusive (``Undecidable``: the flag is asked of PostHog, or ``None`` with
``only_evaluate_locally``), never slow. RE2 differs from Rust in its shorthand classes
(``\\d \\w \\s`` are ASCII only there, and its ``\\s`` lacks ``\\v``): a value where that
matters (non-ASCII with a shorthand class; ``\\v`` with ``\\s``) is run on the automaton.
"""

from __future__ import annotations

import re
import threading
import warnings
from typing import Any, List, Optional, Union

from .errors import Reason, Undecidable
from .nfa import Automaton, Budget, Exhausted, TooLarge

try:  # the [re2] extra: linear time in C++
    import re2 as _re2  # type: ignore[import-not-found,import-untyped,unused-ignore]
except ImportError:  # pragma: no cover - the pure-Python automaton does the same, slower
    _re2 = None

_REPEAT = re.compile(r"\{([0-9]+)(?:,([0-9]*))?\}")
_PLAIN_ESCAPES = "dDsSwWbfnrt"
_CLASS_ESCAPES = "\\-[]^.$*+?(){}|"
_SHORTHANDS = ("\\d", "\\D", "\\s", "\\S", "\\w", "\\W")
_HEX = "0123456789abcdefABCDEF"
#: What may not come right before ``{n,m}`` (nothing to repeat, or a repetition already).
_NOT_REPEATABLE = ("", "|", "(", "^", "$", "empty group", "quantifier")

#: Steps (automaton state visits; RE2 and ``re`` are charged by the value's length) one
#: evaluation may spend on regex filters: about 0.2 s of pure Python at most.
REGEX_BUDGET = 500_000
#: What one RE2 or ``re`` search is charged per character of the value.
_C_ENGINE_RATE = 1 / 16
_budget = threading.local()


class RustRegex:
    """A pattern in the common core, compiled for each engine, with what its inputs must be
    checked for."""

    __slots__ = ("compiled", "word_class", "space_class", "shorthand", "strict_end_with_repetition", "plain", "re2",
                 "_automaton")  # fmt: skip

    def __init__(self, compiled: "re.Pattern[str]", scan: "_Scan") -> None:
        self.compiled = compiled
        self.word_class = scan.word_class
        self.space_class = scan.space_class
        self.shorthand = scan.shorthand
        self.strict_end_with_repetition = scan.end_anchor and scan.repeats
        #: No repetition, no alternation: ``re`` runs it in linear time.
        self.plain = not scan.repeats
        self.re2: Any = None if self.plain else _compile_re2(scan.re2_pattern())
        #: Built at first need: TooLarge is remembered as False.
        self._automaton: Union[Automaton, bool, None] = None

    def automaton(self) -> Automaton:
        built = self._automaton
        if built is None:
            try:
                built = Automaton(self.compiled.pattern)
            except TooLarge:
                built = False
            self._automaton = built
        if not isinstance(built, Automaton):
            raise defer("the pattern is too large to match in bounded time here")
        return built


def defer(why: str) -> Undecidable:
    return Undecidable(Reason.UNSUPPORTED_DEFINITION, "regex left to PostHog: " + why)


def compile_rust_regex(pattern: str) -> Optional[RustRegex]:
    """The compiled pattern; None when ``re`` rejects it; ``Undecidable`` when outside the core."""
    scan = _Scan(pattern)
    translated = scan.run()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "possible nested set": valid, and meant as written
            compiled = re.compile(translated)
    except re.error:
        return None
    except Exception:
        raise defer("Python cannot compile it") from None
    return RustRegex(compiled, scan)


def new_budget(steps: int = REGEX_BUDGET) -> None:
    """Start this thread's regex budget afresh: once per evaluation (``Evaluation``)."""
    _budget.current = Budget(steps)


def regex_search(regex: RustRegex, text: str) -> bool:
    """Whether ``regex`` finds a match in ``text``; ``Undecidable`` where Python and Rust differ,
    or when the evaluation's regex budget is spent."""
    if regex.strict_end_with_repetition and text.endswith("\n"):
        raise defer("a value ending in a newline against $ with repetition")
    ascii_text = text.isascii()
    if not ascii_text:
        if any("\ud800" <= c <= "\udfff" for c in text):
            raise defer("a value with lone surrogates")
        if regex.word_class and any(not c.isascii() and not (c.isalpha() or c.isdecimal()) for c in text):
            raise defer("\\w on non-ASCII marks or numbers")
    if regex.space_class and any(c in text for c in "\x1c\x1d\x1e\x1f"):
        raise defer("\\s on ASCII separators")
    budget: Optional[Budget] = getattr(_budget, "current", None)
    if budget is None:  # a search outside any evaluation: a budget of its own
        budget = Budget(REGEX_BUDGET)
    try:
        if regex.plain or (regex.re2 is not None and _re2_agrees(regex, text, ascii_text)):
            budget.spend(int(len(text) * _C_ENGINE_RATE) + 1)
            engine = regex.compiled if regex.plain else regex.re2
            return engine.search(text) is not None
        return regex.automaton().search(text, budget)
    except Exhausted:
        raise Undecidable(Reason.UNSUPPORTED_DEFINITION, "regex inconclusive: this evaluation's regex work bound "
                          "(%d steps) is spent; PostHog decides" % REGEX_BUDGET) from None  # fmt: skip
    except Undecidable:
        raise
    except Exception:
        raise defer("Python failed running it") from None


def _re2_agrees(regex: RustRegex, text: str, ascii_text: bool) -> bool:
    """RE2's shorthand classes are ASCII, and its ``\\s`` has no ``\\v``: elsewhere it is Rust."""
    if not regex.shorthand:
        return True
    return ascii_text and not (regex.space_class and "\x0b" in text)


def _compile_re2(pattern: str) -> Any:
    """The pattern for RE2, or None (no RE2 here, or RE2 refuses it: the automaton runs it)."""
    if _re2 is None:
        return None
    try:
        options = _re2.Options()
        options.log_errors = False
        return _re2.compile(pattern, options)
    except Exception:
        return None


class _Scan:
    """One left-to-right pass: checks the pattern is in the core and writes its ``re`` form."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.out: List[str] = []
        self.at = 0
        self.class_open: Optional[int] = None  # index of the "[" of the class we are in
        self.last = ""  # what the previous token was, for what may follow it
        self.groups: List[bool] = []  # per open group: does it contain a repetition?
        self.closed_repeats = False  # did the group just closed contain one?
        self.word_class = self.space_class = self.end_anchor = self.repeats = self.shorthand = False
        self._strict_ends: List[int] = []  # where ``$`` became ``\\Z`` in ``out`` (RE2's ``$`` is already strict)

    def re2_pattern(self) -> str:
        out = list(self.out)
        for index in self._strict_ends:
            out[index] = "$"
        return "".join(out)

    def run(self) -> str:
        pattern = self.pattern
        while self.at < len(pattern):
            char = pattern[self.at]
            if "\ud800" <= char <= "\udfff":
                raise defer("lone surrogates")
            if self.class_open is None:
                self._track_groups(char)
            if char == "\\":
                self._escape()
            elif char == "[":
                self._open_class()
            elif self.class_open is not None:
                self._in_class(char)
            else:
                self._outside_class(char)
            self.at += 1
        return "".join(self.out)

    def _track_groups(self, char: str) -> None:
        if char == "$":
            self.end_anchor = True
        if char in "*+?{|":
            self.repeats = True
        if char == "(":
            self.groups.append(False)
        elif char == ")":
            self.closed_repeats = self.groups.pop() if self.groups else False
            if self.groups and self.closed_repeats:
                self.groups[-1] = True
        elif char in "*+?{":
            if self.last == ")" and self.closed_repeats:
                raise defer("a repeated group repeated again")
            if self.groups:
                self.groups[-1] = True

    def _escape(self) -> None:
        pattern = self.pattern
        self.at += 1
        if self.at == len(pattern):
            self.out.append("\\")  # a trailing backslash: re rejects the pattern
            return
        escaped = pattern[self.at]
        in_class = self.class_open is not None
        if escaped == "x":
            digits = pattern[self.at + 1 : self.at + 3]
            if len(digits) != 2 or any(c not in _HEX for c in digits):
                raise defer("\\x without two hex digits")
            self.out.append("\\x" + digits)
            self.at += 2
        else:
            if escaped in "bB<>" and not in_class:
                raise defer("word boundaries")
            if escaped not in _PLAIN_ESCAPES:
                punctuation = " " <= escaped <= "~" and not escaped.isalnum()
                if not punctuation or (in_class and escaped not in _CLASS_ESCAPES):
                    raise defer("the escape \\" + escaped)
            self.word_class = self.word_class or escaped in "wW"
            self.space_class = self.space_class or escaped in "sS"
            self.shorthand = self.shorthand or escaped in "dDwWsS"
            self.out.append("\\" + escaped)
        self.last = "literal"

    def _open_class(self) -> None:
        if self.class_open is not None:
            raise defer("a class inside a class")
        self.class_open = self.at
        self.out.append("[")

    def _in_class(self, char: str) -> None:
        pattern, at = self.pattern, self.at
        if char == "]":
            assert self.class_open is not None
            first = self.class_open + (2 if pattern[self.class_open + 1 : self.class_open + 2] == "^" else 1)
            if at == first:
                raise defer("an empty class")
            self.class_open = None
            self.last = "literal"
            self.out.append("]")
            return
        if pattern[at : at + 2] in ("&&", "--", "~~"):
            raise defer("class set operations")
        if char == "-" and at + 1 < len(pattern) and pattern[at + 1] != "]":
            shorthand_after = pattern[at + 1 : at + 3] in _SHORTHANDS
            shorthand_before = at >= 2 and pattern[at - 2] == "\\" and pattern[at - 1] in "dDsSwW"
            if shorthand_after or shorthand_before:
                raise defer("a range ending in a shorthand class")
        self.out.append(char)

    def _outside_class(self, char: str) -> None:
        pattern, at = self.pattern, self.at
        if char == "(" and pattern[at + 1 : at + 2] == "?":
            if pattern[at + 2 : at + 3] != ":":
                raise defer("inline flags or lookarounds")
            self.out.append("(?:")
            self.at += 2
            self.last = "("
        elif char == "{":
            self._repetition()
        elif char in "*+?":
            if self.last in ("^", "$", "empty group") or pattern[at + 1 : at + 2] in ("+", "{"):
                raise defer("a quantifier with nothing to repeat, or a possessive one")
            self.last = "quantifier"
            self.out.append(char)
        else:
            self.last = "empty group" if char == ")" and self.last in ("(", "empty group") else char
            if char == "$":
                self._strict_ends.append(len(self.out))
            self.out.append("\\Z" if char == "$" else char)

    def _repetition(self) -> None:
        found = _REPEAT.match(self.pattern, self.at)
        if found is None or self.last in _NOT_REPEATABLE:
            raise defer("a {n,m} with nothing to repeat, or not of that form")
        if any(len(n) > 10 or int(n) > 0xFFFFFFFF for n in found.groups() if n):
            raise defer("a repetition count too large")
        self.out.append(found.group())
        self.at = found.end() - 1
        if self.pattern[self.at + 1 : self.at + 2] in ("+", "{"):
            raise defer("a possessive or doubled repetition")
        self.last = "quantifier"
