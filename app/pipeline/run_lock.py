"""One execution per run at a time, whatever the queue does.

A job retried as "stalled" while its first worker is in fact alive (a long pause, a false
positive) must not run the saga twice at once. A session-level advisory lock, held on its
own connection for the whole execution, is released by Postgres if the process dies.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


def lock_key(run_id: uuid.UUID) -> int:
    """A signed 64-bit key derived from the run id."""
    return int.from_bytes(run_id.bytes[:8], "big", signed=True)


@asynccontextmanager
async def run_lock(engine: AsyncEngine, run_id: uuid.UUID) -> AsyncIterator[bool]:
    """Yield True when this process now holds the run's lock, False if another does."""
    key = lock_key(run_id)
    async with engine.connect() as conn:
        acquired = bool(
            (await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})).scalar()
        )
        await conn.commit()
        try:
            yield acquired
        finally:
            if acquired:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                await conn.commit()
