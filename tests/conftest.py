"""Session-wide fixtures: one fresh, migrated Postgres database per test session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db.session import create_engine, create_session_factory
from tests.support.postgres import migrated_database, server_url


@pytest.fixture(scope="session")
def admin_url() -> str:
    return server_url()


@pytest.fixture(scope="session")
def database_url(admin_url: str) -> Iterator[str]:
    """A database created for this test session, migrated to head, dropped at the end."""
    yield from migrated_database(admin_url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=5)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)
