"""Real API and worker processes: each module gets a database of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import migrated_database


@pytest.fixture(scope="module")
def database_url(admin_url: str) -> Iterator[str]:
    """This module's own database: a real worker takes every queued job it finds, so jobs
    left queued by other tests' runs must not be in its way."""
    yield from migrated_database(admin_url, prefix="cerebros_mod")
