"""Checkouts without a round trip (no pre-ping) that still never hand out a closed connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.errors import DatabaseUnavailable
from app.db.session import create_engine, read_connection
from app.db.urls import libpq_url

pytestmark = pytest.mark.postgres


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=2, max_overflow=0)
    yield eng
    await eng.dispose()


async def test_a_read_costs_one_statement_and_no_ping(engine: AsyncEngine) -> None:
    pings = 0
    real_ping = engine.dialect.do_ping

    def counting_ping(dbapi_connection: Any) -> bool:
        nonlocal pings
        pings += 1
        return real_ping(dbapi_connection)

    engine.dialect.do_ping = counting_ping  # type: ignore[method-assign]
    for _ in range(5):
        async with read_connection(engine) as conn:
            assert conn.autocommit
            await (await conn.execute("SELECT 1")).fetchone()
            # No transaction was opened: nothing to BEGIN before or ROLLBACK after.
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert pings == 0
    # The pool's connections are lent back as SQLAlchemy expects them: transactional.
    async with engine.connect() as pooled:
        raw = await pooled.get_raw_connection()
        assert raw.driver_connection is not None and not raw.driver_connection.autocommit


async def test_a_broken_read_connection_is_not_lent_again(
    engine: AsyncEngine, database_url: str
) -> None:
    with pytest.raises(DatabaseUnavailable):
        async with read_connection(engine) as conn:
            pid = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone() or [0])[0]
            with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            await conn.execute("SELECT 1")
    async with read_connection(engine) as conn:
        row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
        assert row is not None and row[0] != pid


async def test_a_connection_the_server_closed_is_replaced_at_checkout(
    engine: AsyncEngine, database_url: str
) -> None:
    async with engine.connect() as conn:
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    await asyncio.sleep(0.2)  # the server's goodbye reaches the idle socket
    async with engine.connect() as conn:  # no error: the closed one was dropped
        assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() != pid
