"""Async engine and session factory, and the one place that decides which Postgres to use."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config import Settings
from app.db.embedded import locate_cluster
from app.db.errors import BusyReportingPool, translate_engine_errors
from app.db.urls import sqlalchemy_url
from app.errors import CerebrosError

log = logging.getLogger(__name__)


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


def create_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine whose database outages leave it as domain errors (app/db/errors.py).

    Args:
        database_url: Any Postgres URL (a SQLAlchemy or a libpq one).
        pool_size: Pooled connections, and as many again of overflow.
    """
    # pool_pre_ping: after a database restart, stale pooled connections are replaced instead
    # of failing the next request.
    engine = create_async_engine(
        sqlalchemy_url(database_url),
        poolclass=BusyReportingPool,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=10,
    )
    translate_engine_errors(engine)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
