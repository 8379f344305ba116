"""The data layer's boundary against a real Postgres: an engine made by `create_engine`
raises domain errors for outages (and only for outages), and still heals itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db.errors import DatabaseBusy, DatabaseUnavailable, translate_driver_errors
from app.db.session import create_engine
from app.db.urls import libpq_url
from app.queue.app import create_queue_app
from app.runs.trial_jobs import RUN_NAS_TASK
from tests.support.processes import free_port

pytestmark = pytest.mark.postgres


@pytest.fixture
async def small_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=1)
    yield engine
    await engine.dispose()


def terminate(database_url: str, pid: int) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def backend_pid(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_an_unreachable_server_is_database_unavailable() -> None:
    engine = create_engine(f"postgresql://cerebros:secret@127.0.0.1:{free_port()}/nothing")
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    assert caught.value.retryable
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)
    assert "secret" not in caught.value.detail


async def test_a_connection_lost_mid_query_is_database_unavailable_and_the_pool_heals(
    small_engine: AsyncEngine, database_url: str
) -> None:
    async with small_engine.connect() as conn:
        terminate(database_url, await backend_pid(conn))
        with pytest.raises(DatabaseUnavailable):
            await conn.execute(text("SELECT 1"))
    # An idle pooled connection killed behind the pool's back: pre-ping replaces it (the
    # translation stays out of the pool's own liveness check).
    async with small_engine.connect() as conn:
        pid = await backend_pid(conn)
    terminate(database_url, pid)
    await asyncio.sleep(0.1)
    async with small_engine.connect() as conn:
        assert await backend_pid(conn) != pid


async def test_an_exhausted_pool_is_database_busy(small_engine: AsyncEngine) -> None:
    small_engine.pool._timeout = 0.2  # type: ignore[attr-defined]
    async with small_engine.connect(), small_engine.connect():  # pool_size 1 + overflow 1
        with pytest.raises(DatabaseBusy) as caught:
            async with small_engine.connect():
                pass
    assert caught.value.retryable
    assert isinstance(caught.value.__cause__, sqlalchemy.exc.TimeoutError)


async def test_errors_that_are_not_outages_pass_unchanged(small_engine: AsyncEngine) -> None:
    async with small_engine.connect() as conn:
        with pytest.raises(sqlalchemy.exc.ProgrammingError):
            await conn.execute(text("SELECT * FROM no_such_table"))
        await conn.rollback()
        with pytest.raises(sqlalchemy.exc.DataError):
            await conn.execute(text("SELECT 1 / 0"))
        await conn.rollback()
        await conn.execute(text("CREATE TEMPORARY TABLE once (id int PRIMARY KEY)"))
        await conn.execute(text("INSERT INTO once VALUES (1)"))
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            await conn.execute(text("INSERT INTO once VALUES (1)"))


async def test_a_job_deferred_on_a_lost_connection_is_database_unavailable(
    small_engine: AsyncEngine, database_url: str
) -> None:
    """procrastinate on a connection of ours raises its own ConnectorException: the wrapper
    used by app/runs (submit, cancel) turns an outage into ours."""
    queue = create_queue_app(database_url)
    async with small_engine.connect() as conn:
        raw = await conn.get_raw_connection()
        terminate(database_url, await backend_pid(conn))
        deferrer = queue.configure_task(RUN_NAS_TASK, connection=raw.driver_connection)
        with pytest.raises(DatabaseUnavailable), translate_driver_errors():
            await deferrer.defer_async(run_id="00000000-0000-0000-0000-000000000000")
        await conn.invalidate()
