"""Glob patterns over dotted event names: `*` is one segment, `**` any number (also zero)."""

from __future__ import annotations

import re
from functools import lru_cache

_SEGMENT = r"[^.]+"


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile `cerebros.nas.**`-style patterns; raise ValueError on an empty segment."""
    if not pattern:
        raise ValueError("pattern must not be empty")
    parts = pattern.split(".")
    if any(p == "" for p in parts):
        raise ValueError(f"pattern {pattern!r} has an empty segment")
    regex = ""
    for index, part in enumerate(parts):
        sep = r"\." if index else ""
        if part == "**":
            # Zero or more segments: `a.**` matches `a` and `a.b.c`.
            regex += rf"(?:{sep}{_SEGMENT})*" if index else rf"(?:{_SEGMENT}(?:\.{_SEGMENT})*)?"
        elif part == "*":
            regex += sep + _SEGMENT
        else:
            regex += sep + re.escape(part).replace(r"\*", _SEGMENT)
    return re.compile(rf"^{regex}$")


def matches(pattern: str, name: str) -> bool:
    return compile_pattern(pattern).match(name) is not None
