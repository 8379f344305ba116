"""Write events as rows in the caller's transaction (the row's trigger NOTIFYs on commit)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import RunEvent


async def publish_event(
    session: AsyncSession,
    run_id: uuid.UUID,
    name: str,
    payload: dict[str, Any] | None = None,
    *,
    correlation_id: str | None = None,
    dedup_key: str | None = None,
) -> int | None:
    """Insert one event; return its id, or None when `dedup_key` was already published.

    `dedup_key` makes publication idempotent: a step or trial retried after a crash
    publishes the same key again and nothing is duplicated.
    """
    stmt = (
        insert(RunEvent)
        .values(
            run_id=run_id,
            name=name,
            payload=payload or {},
            correlation_id=correlation_id or str(run_id),
            dedup_key=dedup_key,
        )
        .on_conflict_do_nothing(constraint="uq_run_events_run_id_dedup_key")
        .returning(RunEvent.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def is_published(session: AsyncSession, run_id: uuid.UUID, dedup_key: str) -> bool:
    """True when the run's event with `dedup_key` exists (was published and committed)."""
    stmt = select(RunEvent.id).where(RunEvent.run_id == run_id, RunEvent.dedup_key == dedup_key)
    return (await session.execute(stmt.limit(1))).first() is not None


async def list_events(
    session: AsyncSession,
    run_id: uuid.UUID,
    *,
    after: int = 0,
    limit: int = 1000,
) -> list[RunEvent]:
    """A run's events with id > `after`, oldest first."""
    stmt = (
        select(RunEvent)
        .where(RunEvent.run_id == run_id, RunEvent.id > after)
        .order_by(RunEvent.id)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())
