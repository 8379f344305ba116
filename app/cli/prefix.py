"""Resolve an id prefix the user typed to the one full id it names, over an API listing."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from app.cli.errors import CliError

# One page of the listing: the ids on it, and the cursor of the next page (None: last).
Page = Callable[[str | None], tuple[Iterable[str], str | None]]


def unique_match(given: str, wanted: str, page: Page, noun: str) -> str:
    """The one id of the listing that starts with `wanted`; exit code 2 when none or several.

    Pages are read until a second match shows the prefix is ambiguous, or the listing ends.
    """
    matches: list[str] = []
    cursor: str | None = None
    while True:
        ids, cursor = page(cursor)
        matches.extend(i for i in ids if i.startswith(wanted))
        if len(matches) > 1 or not cursor:
            break
    if not matches:
        raise CliError(f"no {noun} starts with {given!r}", code=2)
    if len(matches) > 1:
        raise CliError(
            f"{given!r} starts more than one {noun} ({', '.join(matches)}); give more characters",
            code=2,
        )
    return matches[0]
