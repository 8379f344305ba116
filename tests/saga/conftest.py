"""Every saga test runs against both stores: `store` is a Postgres or an in-memory one.

The Postgres variants (and any test here that asks for a database fixture) carry the
`postgres` mark, so `pytest tests/unit tests/saga -m "not postgres"` needs no database.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.saga import InMemorySagaStore, PostgresSagaStore, SagaStore

HERE = Path(__file__).parent
DATABASE_FIXTURES = frozenset({"admin_url", "database_url", "engine", "session_factory"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests here that ask for a database fixture directly, so none is missed."""
    for item in items:
        asks = DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if asks and item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres), "memory"])
def store(request: pytest.FixtureRequest) -> SagaStore:
    """A fresh in-memory store, or the Postgres store on the session's migrated database."""
    if request.param == "memory":
        return InMemorySagaStore()
    return PostgresSagaStore(request.getfixturevalue("session_factory"))
