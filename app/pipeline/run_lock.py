"""One execution per run at a time, whatever the queue does.

A job retried as "stalled" while its first worker is in fact alive (a long pause, a false
positive) must not run the saga twice at once. A session-level advisory lock, held on its
own connection for the whole execution, is released by Postgres if the process dies.

A job that finds the lock taken waits for it rather than returning: returning would let the
queue mark the job `succeeded` while the run is unfinished, and if the holder then dies the
run would be stranded. Waiting lets the holder's liveness decide: when it finishes, the
waiter finds the run final and ends; when it dies, the waiter takes over and resumes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


def lock_key(run_id: uuid.UUID) -> int:
    """A signed 64-bit key derived from the run id."""
    return int.from_bytes(run_id.bytes[:8], "big", signed=True)


@asynccontextmanager
async def run_lock(
    engine: AsyncEngine, run_id: uuid.UUID, *, poll_s: float = 0.5
) -> AsyncIterator[None]:
    """Hold the run's lock for the block, waiting as long as another process holds it.

    Polls with `pg_try_advisory_lock` instead of blocking in `pg_advisory_lock`, so the
    event loop (and with it the worker's heartbeat) keeps running while it waits.
    """
    key = lock_key(run_id)
    async with engine.connect() as conn:
        waited = False
        while True:
            acquired = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
            ).scalar()
            await conn.commit()
            if acquired:
                break
            if not waited:
                log.warning("run %s is being executed by another worker; waiting for it", run_id)
                waited = True
            await asyncio.sleep(poll_s)
        try:
            yield
        finally:
            try:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                await conn.commit()
            except Exception:
                # A pooled connection must never go back holding the lock: close it
                # (Postgres releases a session lock with its session).
                log.warning("could not release the lock of run %s; closing its connection", run_id)
                await conn.invalidate()
