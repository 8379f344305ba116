"""Glob patterns over dotted event names: `*` is one segment, `**` any number (also zero).

A `*` inside a segment stands for one or more characters of that segment (`trial*` matches
`trials`, not `trial`); anything else is literal. Segments matched by `*` or `**` are never
empty.

Matching never backtracks. A pattern is a list of segments, and a name is read one segment at
a time while keeping the *set* of pattern positions it could be at (an NFA simulation); a
segment with `*`s is matched against a name segment the same way, one character at a time.
The work is bounded by (len(pattern) + 1) x (len(name) + 1) steps whatever the pattern: the
regex this replaces nested one group per `**` and could spend seconds on one event name, on
the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

ANY_SEGMENTS: Final = "**"
MEMO_SIZE: Final = 64  # names per pattern remembered; event names are a small taxonomy


@dataclass(frozen=True)
class SegmentGlob:
    """One pattern segment: literal text, where each `*` is one or more characters."""

    text: str

    @property
    def is_literal(self) -> bool:
        return "*" not in self.text

    def match_steps(self, segment: str) -> tuple[bool, int]:
        """(whether `segment` matches, steps taken); steps <= (len(text) + 1) * len(segment)."""
        if self.is_literal:
            return segment == self.text, 1
        if self.text == "*":
            return segment != "", 1
        tokens = self.text  # a character, or `*`
        end = len(tokens)
        states = {0}  # state i: tokens[:i] matched the characters read so far
        steps = 0
        for char in segment:
            following: set[int] = set()
            for i in states:
                steps += 1
                if i < end and (tokens[i] == "*" or tokens[i] == char):
                    following.add(i + 1)  # a literal, or a star's first character
                if i > 0 and tokens[i - 1] == "*":
                    following.add(i)  # the star before takes one more character
            states = following
            if not states:
                return False, steps
        return end in states, steps


Token = SegmentGlob | str  # str: ANY_SEGMENTS


@dataclass(frozen=True)
class GlobPattern:
    """A compiled pattern; `match(name)` is True when the whole name matches."""

    pattern: str
    tokens: tuple[Token, ...]
    _memo: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def match(self, name: str) -> bool:
        known = self._memo.get(name)
        if known is not None:
            return known
        matched, _ = self.match_steps(name)
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()
        self._memo[name] = matched
        return matched

    def match_steps(self, name: str) -> tuple[bool, int]:
        """(whether `name` matches, steps taken), without the memo: the work bound is testable."""
        end = len(self.tokens)
        states, steps = self._closure({0})
        for segment in name.split(".") if name else ():
            following: set[int] = set()
            for i in states:
                steps += 1
                if i == end:
                    continue
                token = self.tokens[i]
                if isinstance(token, SegmentGlob):
                    matched, inner = token.match_steps(segment)
                    steps += inner
                    if matched:
                        following.add(i + 1)
                elif segment:
                    following.add(i)  # `**` takes this segment and may take more
            states, closing = self._closure(following)
            steps += closing
            if not states:
                return False, steps
        return end in states, steps

    def _closure(self, states: set[int]) -> tuple[set[int], int]:
        """Add the positions reachable by letting `**`s take no segment (each added once)."""
        closed: set[int] = set()
        for i in sorted(states):
            while i not in closed:
                closed.add(i)
                if i == len(self.tokens) or self.tokens[i] != ANY_SEGMENTS:
                    break
                i += 1
        return closed, len(closed)


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> GlobPattern:
    """Compile `cerebros.nas.**`-style patterns; raise ValueError on an empty segment."""
    if not pattern:
        raise ValueError("pattern must not be empty")
    parts = pattern.split(".")
    if any(p == "" for p in parts):
        raise ValueError(f"pattern {pattern!r} has an empty segment")
    tokens = tuple(ANY_SEGMENTS if p == ANY_SEGMENTS else SegmentGlob(p) for p in parts)
    return GlobPattern(pattern, tokens)


def matches(pattern: str, name: str) -> bool:
    return compile_pattern(pattern).match(name)
