"""Async engine and session factory, and the one place that decides which Postgres to use."""

from __future__ import annotations

import logging
import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import sqlalchemy.exc
from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util.concurrency import greenlet_spawn

from app.config import Settings
from app.db.embedded import locate_cluster
from app.db.errors import BusyReportingPool, translate_driver_errors, translate_engine_errors
from app.db.urls import sqlalchemy_url
from app.errors import CerebrosError

log = logging.getLogger(__name__)

# Pooled connections older than this are replaced on checkout (no pre-ping: see create_engine).
POOL_RECYCLE_S = 1800.0


class NoDatabaseConfigured(CerebrosError):
    """Neither DATABASE_URL nor the embedded database may be used."""


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL when set, otherwise the URL of the embedded cluster (started if needed).

    Starting the embedded server is said in one warning (stderr, where logging is not set
    up): a command run for something else must not leave a server running unannounced.
    """
    if settings.database_url:
        return settings.database_url
    if not settings.embedded_database:
        raise NoDatabaseConfigured(
            "DATABASE_URL is not set and the embedded database is off "
            "(CEREBROS_EMBEDDED_DATABASE=false): set DATABASE_URL=postgresql://user:pass@host/db"
        )
    cluster = locate_cluster(settings.data_dir)
    if not cluster.running():
        moved = (
            ""
            if cluster.home == cluster.data_dir
            else f" (the server's user cannot reach {cluster.data_dir})"
        )
        log.warning(
            "starting the embedded PostgreSQL in %s%s (it keeps running; `cerebros down` stops it)",
            cluster.pgdata,
            moved,
        )
    return cluster.start()


def create_engine(
    database_url: str,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
    pool_recycle_s: float = POOL_RECYCLE_S,
) -> AsyncEngine:
    """An async engine whose database outages leave it as domain errors (app/db/errors.py).

    A checkout costs no round trip: there is no pre-ping. A pooled connection the server
    closed (restart, `pg_terminate_backend`, idle timeout) has a readable socket (the
    server's last message, then end of file), which `drop_closed_connections` checks on
    checkout without talking to the server: such a connection is replaced before use. One
    that dies silently (a network cut) or while in use fails its statement, which the
    translation answers as `DatabaseUnavailable` (503) and SQLAlchemy invalidates; connections
    older than `pool_recycle_s` are replaced on checkout.

    Args:
        database_url: Any Postgres URL (a SQLAlchemy or a libpq one).
        pool_size: Connections kept in the pool.
        max_overflow: Extra connections opened when all are busy and closed on return (None:
            as many as `pool_size`). A server whose concurrency is known sizes `pool_size` to
            it with no overflow: overflow connections are opened and closed per burst.
        pool_recycle_s: Age after which a pooled connection is replaced on checkout.
    """
    engine = create_async_engine(
        sqlalchemy_url(database_url),
        poolclass=BusyReportingPool,
        pool_pre_ping=False,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_timeout=10,
        pool_recycle=pool_recycle_s,
    )
    translate_engine_errors(engine)
    event.listen(engine.sync_engine, "checkout", drop_closed_connections)
    return engine


def _socket_readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def drop_closed_connections(
    dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
) -> None:
    """The pool's `checkout` hook: refuse a connection the server has closed (no round trip).

    An idle connection's socket has nothing to read unless the server said something
    unasked: in practice, that it is closing the connection (shutdown, terminated backend,
    idle timeout), followed by end of file. Any such connection, or one psycopg already
    knows is closed or broken, raises `DisconnectionError`, on which the pool discards it and
    checks out (or opens) another. The price of a rare false alarm (a notice on an idle
    connection) is one reconnection.
    """
    conn = proxy.driver_connection
    if conn is None or conn.closed or conn.broken:
        raise sqlalchemy.exc.DisconnectionError("the pooled connection is closed")
    try:
        readable = _socket_readable(conn.pgconn.socket)
    except (OSError, psycopg.OperationalError) as exc:
        raise sqlalchemy.exc.DisconnectionError("the pooled connection has no socket") from exc
    if readable:
        raise sqlalchemy.exc.DisconnectionError("the server closed the pooled connection")


@asynccontextmanager
async def read_connection(engine: AsyncEngine) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A pooled connection of `engine`, as psycopg's own connection in autocommit mode.

    For the API's hot reads: one statement is one round trip (no BEGIN, no ROLLBACK) and no
    SQLAlchemy connection, execution context or result is built around it. The connection
    comes from `engine`'s pool like any other (its size, checkout timeout and `DatabaseBusy`,
    `drop_closed_connections`, recycling), and goes back to it as SQLAlchemy left it (not
    autocommit). A database outage in the block is `DatabaseUnavailable`
    (`translate_driver_errors`); a connection that is broken, or not idle afterwards (a
    cancelled query), is discarded rather than returned.

    Args:
        engine: The engine whose pool lends the connection.

    Yields:
        The psycopg connection, in autocommit mode, for this block only.
    """
    with translate_driver_errors():  # a new connection may fail to open
        fairy = await greenlet_spawn(engine.sync_engine.pool.connect)
    conn = fairy.driver_connection
    assert isinstance(conn, psycopg.AsyncConnection)
    try:
        await conn.set_autocommit(True)
        with translate_driver_errors():
            yield conn
    finally:
        idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        keep = idle and not (conn.closed or conn.broken)
        if keep:
            await conn.set_autocommit(False)
        await greenlet_spawn(_release, fairy, keep)


def _release(fairy: PoolProxiedConnection, keep: bool) -> None:
    if not keep:
        fairy.invalidate()
    fairy.close()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
