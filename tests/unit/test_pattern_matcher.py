"""The glob matcher does bounded work on hostile patterns and agrees with a regex reference."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.events.patterns import compile_pattern, matches

NAME = "cerebros.nas.trial.epoch"


def reference_regex(pattern: str) -> re.Pattern[str]:
    """The previous implementation (nested backtracking groups), fine on short inputs.

    It is applied to `r.` + pattern and `r.` + name: there a leading `**` sits after a
    segment, where the regex gave it the documented meaning (zero segments allowed).
    """
    regex = ""
    for index, part in enumerate(f"r.{pattern}".split(".")):
        sep = r"\." if index else ""
        if part == "**":
            regex += rf"(?:{sep}[^.]+)*"
        elif part == "*":
            regex += sep + "[^.]+"
        else:
            regex += sep + re.escape(part).replace(r"\*", "[^.]+")
    return re.compile(rf"^{regex}\Z")


def reference(pattern: str, name: str) -> bool:
    return reference_regex(pattern).match(f"r.{name}") is not None


def bound(pattern: str, name: str) -> int:
    """The documented work bound: proportional to len(pattern) x len(name)."""
    return 2 * (len(pattern) + 2) * (len(name) + 2)


# Patterns that made the regex backtrack for seconds per name (199 characters, about the most
# the API accepts), against long names that none of them matches: each pattern needs a last
# segment (or character) that no name has.
HOSTILE = [
    ("**." * 66) + "x",
    ("a.**.*." * 29)[:197] + ".x",
    ("**.*." * 40)[:197] + ".x",
    "a" + "*a" * 99,
    "*" * 198 + "x",
    ("*a*." * 50)[:197] + ".x",
]
LONG_NAMES = [
    ".".join(["a"] * 99) + ".b",
    "a" * 199 + "b",
    ".".join(["aaaa"] * 39) + ".b",
    "cerebros.nas.trial.epoch." + ".".join(["a"] * 80) + ".b",
]


@pytest.mark.parametrize("pattern", HOSTILE)
@pytest.mark.parametrize("name", LONG_NAMES)
def test_hostile_patterns_do_bounded_work(pattern: str, name: str) -> None:
    assert len(pattern) == 199
    matched, steps = compile_pattern(pattern).match_steps(name)
    assert not matched
    assert steps <= bound(pattern, name), (steps, bound(pattern, name))


def test_a_leading_double_star_may_take_no_segment() -> None:
    assert matches("**.started", "started")
    assert matches("**.run.*", "cerebros.nas.run.completed")
    assert matches("**.**.epoch", "epoch")
    assert not matches("**.started", "cerebros.nas.run.startedX")


def test_star_inside_a_segment_takes_at_least_one_character() -> None:
    assert matches("trial*", "trials")
    assert not matches("trial*", "trial")
    assert matches("t*l*", "trials")
    assert not matches("t*l*", "tl")
    assert not matches("trial*", "trial.s")


segment = st.text(alphabet="ab", min_size=1, max_size=4)
pattern_segment = st.one_of(
    st.sampled_from(["*", "**"]), st.text(alphabet="ab*", min_size=1, max_size=4)
)
names = st.lists(segment, min_size=1, max_size=6).map(".".join)
patterns = st.lists(pattern_segment, min_size=1, max_size=5).map(".".join)


@settings(max_examples=500, deadline=None)
@given(patterns, names)
def test_agrees_with_the_regex_reference(pattern: str, name: str) -> None:
    compiled = compile_pattern(pattern)
    matched, steps = compiled.match_steps(name)
    assert matched == reference(pattern, name)
    assert compiled.match(name) == matched  # through the memo, twice
    assert compiled.match(name) == matched
    assert steps <= bound(pattern, name)
