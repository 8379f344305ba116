"""The database reads of /metrics and the health checks: short, read-only, time-limited.

Each function runs in one short transaction of the API's pool, under `asyncio.timeout` and
the same `statement_timeout`, so neither a slow database nor an unreachable one can hold a
scrape or a probe longer than `timeout_s` (a probe that waits is worse than one that fails).
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.observability.metrics import DatabaseCounts

DEFAULT_TIMEOUT_S = 2.0


async def _limit(session: AsyncSession, timeout_s: float) -> None:
    await session.execute(text(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}"))


async def count_rows(
    sessions: async_sessionmaker[AsyncSession],
    *,
    stalled_after_s: float,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> DatabaseCounts:
    """Runs by status, queue jobs by queue and status, workers live and registered."""
    async with asyncio.timeout(timeout_s), sessions.begin() as session:
        await _limit(session, timeout_s)
        runs = await session.execute(text("SELECT status, count(*) FROM runs GROUP BY status"))
        jobs = await session.execute(
            text(
                "SELECT queue_name, status::text, count(*) FROM procrastinate_jobs "
                "GROUP BY queue_name, status"
            )
        )
        workers = await session.execute(
            text(
                "SELECT count(*) FILTER (WHERE last_heartbeat >= clock_timestamp() - make_interval("
                "secs => :stalled)), count(*) FROM procrastinate_workers"
            ),
            {"stalled": stalled_after_s},
        )
        live, registered = workers.one()
        return DatabaseCounts(
            runs={str(status): int(n) for status, n in runs},
            jobs={(str(queue), str(status)): int(n) for queue, status, n in jobs},
            workers_live=int(live),
            workers_registered=int(registered),
        )


async def database_revisions(
    sessions: async_sessionmaker[AsyncSession], *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> frozenset[str]:
    """The Alembic revisions the database is at (empty: never migrated)."""
    async with asyncio.timeout(timeout_s), sessions.begin() as session:
        await _limit(session, timeout_s)
        exists = await session.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
        if not exists:
            return frozenset()
        rows = await session.scalars(text("SELECT version_num FROM alembic_version"))
        return frozenset(str(v) for v in rows)


@dataclass(frozen=True)
class WorkerHeartbeat:
    """One row of procrastinate_workers, with the jobs it holds."""

    id: int
    last_heartbeat: datetime.datetime
    seconds_since_heartbeat: float
    jobs_running: int


async def worker_heartbeats(
    sessions: async_sessionmaker[AsyncSession],
    *,
    limit: int = 100,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[WorkerHeartbeat]:
    """The registered workers, freshest heartbeat first, at most `limit`."""
    async with asyncio.timeout(timeout_s), sessions.begin() as session:
        await _limit(session, timeout_s)
        rows = await session.execute(
            text(
                "SELECT w.id, w.last_heartbeat, "
                "extract(epoch FROM clock_timestamp() - w.last_heartbeat), "
                "(SELECT count(*) FROM procrastinate_jobs j "
                " WHERE j.worker_id = w.id AND j.status = 'doing') "
                "FROM procrastinate_workers w ORDER BY w.last_heartbeat DESC LIMIT :limit"
            ),
            {"limit": limit},
        )
        return [
            WorkerHeartbeat(int(id_), beat, max(0.0, float(age)), int(jobs))
            for id_, beat, age, jobs in rows
        ]
