"""Each module of this package gets a database of its own: the gauges count every row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import migrated_database


@pytest.fixture(scope="module")
def database_url(admin_url: str) -> Iterator[str]:
    yield from migrated_database(admin_url, prefix="cerebros_obs")
