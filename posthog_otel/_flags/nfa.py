"""A linear-time matcher for the regex core ``regex.py`` lets through, in pure Python.

Python's ``re`` backtracks: ``(a|a)*$`` on 30 characters, or ``.*a.*b.*c.*d`` on a long URL,
takes minutes while holding the GIL. PostHog's servers match in linear time (Rust's
engines), and so does this: a Thompson automaton, simulated one character at a time over
the set of live states, so a search costs at most (characters x states) steps, and each
step is counted against a budget (``Budget``): past it, the search stops and says so
(``Exhausted``) instead of running on.

It reads the pattern as ``regex.py`` wrote it for ``re`` (after ``re`` accepted it): the
core's syntax only (literals, escapes, classes, ``.``, ``^``, ``\\Z``, groups, ``|``,
``* + ? {n} {n,} {n,m}`` and their lazy forms). Whether a character matches an atom is
asked of ``re`` itself (one character against a compiled class: no backtracking there),
so classes and escapes mean exactly what they meant before.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Tuple

#: Automaton states a pattern may compile to (``{n,m}`` repeats its atom); larger ones are
#: not matched here.
MAX_STATES = 10_000
_REPEAT = re.compile(r"\{([0-9]+)(?:,([0-9]*))?\}")

# State kinds: a character test, a fork, the start and end anchors, the match.
_CHAR, _SPLIT, _BOL, _EOL, _MATCH = range(5)


class TooLarge(Exception):
    """The pattern needs more than ``MAX_STATES`` states."""


class Exhausted(Exception):
    """The search would cost more steps than the budget has left."""


class Budget:
    """Steps (state visits) a search, or several, may still take."""

    __slots__ = ("left",)

    def __init__(self, steps: int) -> None:
        self.left = steps

    def spend(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise Exhausted()


class _Atom:
    """One character test, with its answers remembered (texts repeat characters)."""

    __slots__ = ("test", "seen")

    def __init__(self, test: Callable[[str], bool]) -> None:
        self.test = test
        self.seen: Dict[str, bool] = {}

    def __call__(self, char: str) -> bool:
        answer = self.seen.get(char)
        if answer is None:
            answer = self.test(char)
            if len(self.seen) < 4096:
                self.seen[char] = answer
        return answer


# An automaton fragment: (start state, the dangling exits to patch).
_Fragment = Tuple[int, List[Tuple[int, int]]]


class Automaton:
    """``pattern`` (``re`` syntax of the core) compiled; ``search(text, budget)``."""

    def __init__(self, pattern: str) -> None:
        self._pattern = pattern
        self._at = 0
        self.kind: List[int] = []
        self.out: List[List[int]] = []  # next states (one, or two for a fork)
        self.atom: List[Optional[_Atom]] = []
        start, exits = self._alternation()
        if self._at != len(pattern):
            raise ValueError("unbalanced parenthesis")  # re refused it already; never reached
        self._patch(exits, self._state(_MATCH))
        self.start = start

    # --- building -------------------------------------------------------------------------

    def _state(self, kind: int, atom: Optional[_Atom] = None, out: Optional[List[int]] = None) -> int:
        if len(self.kind) >= MAX_STATES:
            raise TooLarge()
        self.kind.append(kind)
        self.out.append(out if out is not None else [-1])
        self.atom.append(atom)
        return len(self.kind) - 1

    def _patch(self, exits: List[Tuple[int, int]], target: int) -> None:
        for state, slot in exits:
            self.out[state][slot] = target

    def _alternation(self) -> _Fragment:
        branches = [self._sequence()]
        while self._peek() == "|":
            self._at += 1
            branches.append(self._sequence())
        start, exits = branches[0]
        for other_start, other_exits in branches[1:]:
            start = self._state(_SPLIT, out=[start, other_start])
            exits = exits + other_exits
        return start, exits

    def _sequence(self) -> _Fragment:
        pieces: List[_Fragment] = []
        while self._peek() not in ("", "|", ")"):
            begin = self._at
            piece = self._atom_fragment()
            pieces.append(self._quantified(piece, self._pattern[begin : self._at]))
        if not pieces:
            empty = self._state(_SPLIT, out=[-1, -1])  # matches the empty string: both exits lead on
            return empty, [(empty, 0), (empty, 1)]
        start, exits = pieces[0]
        for next_start, next_exits in pieces[1:]:
            self._patch(exits, next_start)
            exits = next_exits
        return start, exits

    def _quantified(self, piece: _Fragment, source: str) -> _Fragment:
        pattern = self._pattern
        char = self._peek()
        if char in ("*", "+", "?"):
            self._at += 1
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        elif char == "{" and _REPEAT.match(pattern, self._at):
            found = _REPEAT.match(pattern, self._at)
            assert found is not None
            self._at = found.end()
            low = int(found.group(1))
            high = low if found.group(2) is None else (int(found.group(2)) if found.group(2) else None)
        else:
            return piece
        if self._peek() == "?":
            self._at += 1  # lazy: the same strings match
        return self._repeat(piece, source, low, high)

    def _repeat(self, piece: _Fragment, source: str, low: int, high: Optional[int]) -> _Fragment:
        """``piece`` low to high times: copies of it, rebuilt from its source text."""
        copies = [piece] + [self._rebuild(source) for _ in range(max(low, 1) - 1)]
        fragments: List[_Fragment] = copies[:low]
        if high is None:
            loop_body = copies[low - 1] if low else copies[0]
            body_start, body_exits = loop_body
            fork = self._state(_SPLIT, out=[body_start, -1])
            self._patch(body_exits, fork)
            if low:
                fragments[-1] = (body_start, [(fork, 1)])
            else:
                fragments.append((fork, [(fork, 1)]))
        else:
            extra = high - low
            if extra > MAX_STATES:
                raise TooLarge()
            optional = copies[low:] if low == 0 else []
            while len(optional) < extra:
                optional.append(self._rebuild(source))
            for body_start, body_exits in optional[:extra]:
                fork = self._state(_SPLIT, out=[body_start, -1])
                fragments.append((fork, body_exits + [(fork, 1)]))
        if not fragments:  # {0} or {0,0}: the empty string
            empty = self._state(_SPLIT, out=[-1, -1])
            return empty, [(empty, 0), (empty, 1)]
        start, exits = fragments[0]
        for next_start, next_exits in fragments[1:]:
            self._patch(exits, next_start)
            exits = next_exits
        return start, exits

    def _rebuild(self, source: str) -> _Fragment:
        saved = self._pattern, self._at
        self._pattern, self._at = source, 0
        try:
            return self._atom_fragment()
        finally:
            self._pattern, self._at = saved

    def _atom_fragment(self) -> _Fragment:
        pattern, at = self._pattern, self._at
        char = pattern[at]
        if char == "(":
            self._at += 3 if pattern.startswith("(?:", at) else 1
            fragment = self._alternation()
            self._at += 1  # ")"
            return fragment
        if char == "^":
            self._at += 1
            state = self._state(_BOL)
            return state, [(state, 0)]
        if pattern.startswith("\\Z", at):
            self._at += 2
            state = self._state(_EOL)
            return state, [(state, 0)]
        if char == "[":
            end = _class_end(pattern, at)
            text = pattern[at:end]
            self._at = end
        elif char == "\\":
            size = 4 if pattern[at + 1 : at + 2] == "x" else 2
            text = pattern[at : at + size]
            self._at += size
        else:
            text = char
            self._at += 1
        state = self._state(_CHAR, _atom(text))
        return state, [(state, 0)]

    def _peek(self) -> str:
        return self._pattern[self._at : self._at + 1]

    # --- searching ------------------------------------------------------------------------

    def search(self, text: str, budget: Budget) -> bool:
        """Whether the pattern matches anywhere in ``text``; ``Exhausted`` past the budget."""
        end = len(text)
        out, atom = self.out, self.atom
        current, matched = self._closure([self.start], 0, end, budget)
        for position, char in enumerate(text):
            if matched:
                return True
            advanced = [out[s][0] for s in current if atom[s](char)]  # type: ignore[misc]
            advanced.append(self.start)  # a match may also start at the next character
            current, matched = self._closure(advanced, position + 1, end, budget)
        return matched

    def _closure(self, states: List[int], position: int, end: int, budget: Budget) -> Tuple[List[int], bool]:
        """The character tests reachable without reading a character (each once), and
        whether the match is."""
        kind, out = self.kind, self.out
        seen = set()
        tests = []
        matched = False
        stack = states[::-1]
        while stack:
            state = stack.pop()
            if state in seen:
                continue
            seen.add(state)
            what = kind[state]
            if what == _CHAR:
                tests.append(state)
            elif what == _SPLIT:
                first, second = out[state]
                stack.append(second)
                stack.append(first)
            elif what == _MATCH:
                matched = True
            elif what == _BOL:
                if position == 0:
                    stack.append(out[state][0])
            elif position == end:  # _EOL
                stack.append(out[state][0])
        budget.spend(len(seen))
        return tests, matched


def _class_end(pattern: str, at: int) -> int:
    """The index after the ``]`` that closes the class opening at ``at`` (the core has no
    nested classes and no ``]`` first in a class)."""
    position = at + 1
    while pattern[position] != "]":
        position += 2 if pattern[position] == "\\" else 1
    return position + 1


def _atom(text: str) -> _Atom:
    if text == ".":
        return _Atom(lambda char: char != "\n")
    if len(text) == 1:
        return _Atom(text.__eq__)
    compiled = re.compile(text)
    return _Atom(lambda char: compiled.fullmatch(char) is not None)
