"""Shared helpers of the database/API benchmarks: a fresh migrated database, statistics, docs.

Run the benchmarks as modules (`python -m benchmarks.bookkeeping`) from the repository root.
"""

from __future__ import annotations

import datetime
import os
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from app.db.migrate import upgrade
from tests.support.postgres import create_database, drop_database, server_url

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new, migrated database on the test server (dropped afterwards); yields its URL."""
    admin = server_url()
    url = create_database(admin, prefix=prefix)
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(admin, url)


def nproc() -> int:
    return len(os.sched_getaffinity(0))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def median_spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max) of repeated measurements."""
    return statistics.median(values), min(values), max(values)


def fmt(values: Sequence[float], digits: int = 2) -> str:
    """`median (min-max)` of repeated measurements."""
    med, low, high = median_spread(values)
    return f"{med:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def append_section(title: str, command: str, body: str) -> None:
    """Append a dated section (date, nproc, exact command, then `body`) to docs/benchmarks.md."""
    head = (
        f"\n## {title}\n\n"
        f"Date {datetime.date.today().isoformat()}, `nproc` = {nproc()}. Command:\n\n"
        f"```\n{command}\n```\n\n"
    )
    with DOC.open("a") as handle:
        handle.write(head + body.rstrip() + "\n")
    print(f"appended '{title}' to {DOC}")
