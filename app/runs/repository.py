"""All reads and writes of the runs table.

Trials have theirs in `app.runs.trials`, events in `app.events.store`.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from sqlalchemy import func, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ACTIVE_STATUSES, FINAL_STATUSES, Run, RunStatus
from app.errors import InvalidInput
from app.schemas.runs import RunError, RunSummary


async def get_run(session: AsyncSession, run_id: uuid.UUID, owner: str | None = None) -> Run | None:
    """The run, or None when absent or owned by someone else (owner=None: any owner)."""
    stmt = select(Run).where(Run.id == run_id)
    if owner is not None:
        stmt = stmt.where(Run.owner == owner)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_run_for_update(session: AsyncSession, run_id: uuid.UUID) -> Run | None:
    stmt = select(Run).where(Run.id == run_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def find_by_idempotency_key(session: AsyncSession, owner: str, key: str) -> Run | None:
    stmt = select(Run).where(Run.owner == owner, Run.idempotency_key == key)
    return (await session.execute(stmt)).scalar_one_or_none()


async def lock_owner(session: AsyncSession, owner: str) -> None:
    """Take the owner's transaction-scoped advisory lock (serializes their submissions)."""
    key = func.hashtextextended(literal("cerebros.runs.owner:") + owner, 0)
    await session.execute(select(func.pg_advisory_xact_lock(key)))


async def count_active_runs(session: AsyncSession, owner: str) -> int:
    """The owner's queued + running runs."""
    stmt = select(func.count()).where(Run.owner == owner, Run.status.in_(ACTIVE_STATUSES))
    return int((await session.execute(stmt)).scalar_one())


def encode_cursor(run: Run) -> str:
    return encode_cursor_values(run.created_at, run.id)


def encode_cursor_values(created_at: datetime, run_id: uuid.UUID) -> str:
    """The cursor of the page that follows the run (created_at, run_id)."""
    raw = f"{created_at.isoformat()}|{run_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, run_id = base64.urlsafe_b64decode(padded).decode().split("|")
        return datetime.fromisoformat(created), uuid.UUID(run_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this API returned", field="cursor") from exc


async def list_runs(
    session: AsyncSession,
    *,
    owner: str | None,
    status: RunStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Run], str | None]:
    """Newest first; keyset pagination on (created_at, id) so pages never skip or repeat."""
    stmt = select(Run).order_by(Run.created_at.desc(), Run.id.desc()).limit(limit + 1)
    if owner is not None:
        stmt = stmt.where(Run.owner == owner)
    if status is not None:
        stmt = stmt.where(Run.status == status)
    if cursor:
        created, run_id = decode_cursor(cursor)
        stmt = stmt.where(tuple_(Run.created_at, Run.id) < tuple_(created, run_id))
    runs = list((await session.execute(stmt)).scalars())
    next_cursor = encode_cursor(runs[limit - 1]) if len(runs) > limit else None
    return runs[:limit], next_cursor


async def mark_running(session: AsyncSession, run_id: uuid.UUID) -> Run | None:
    """Move a queued (or retried, still running) run to running; None if it is final."""
    stmt = (
        update(Run)
        .where(Run.id == run_id, Run.status.in_(ACTIVE_STATUSES))
        .values(
            status=RunStatus.RUNNING,
            started_at=func.coalesce(Run.started_at, func.clock_timestamp()),
        )
        .returning(Run)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def claim_run(session: AsyncSession, run_id: uuid.UUID) -> Run | None:
    """The run for a job about to execute it: moved to running unless it is final already.

    A final run is returned as it is; None when it does not exist.
    """
    run = await mark_running(session, run_id)
    return run if run is not None else await get_run(session, run_id)


async def set_current_step(session: AsyncSession, run_id: uuid.UUID, step: str | None) -> None:
    await session.execute(update(Run).where(Run.id == run_id).values(current_step=step))


async def store_result(session: AsyncSession, run_id: uuid.UUID, summary: RunSummary) -> None:
    """Store the run's result (in the transaction that makes it succeeded)."""
    result = summary.model_dump(mode="json")
    await session.execute(update(Run).where(Run.id == run_id).values(result=result))


async def finish_run(
    session: AsyncSession,
    run_id: uuid.UUID,
    status: RunStatus,
    *,
    error: RunError | None = None,
) -> bool:
    """Set a final status once; a run already final is left as it is (returns False).

    The result, if any, is already stored (`store_result`, the saga's last step).
    """
    assert status.is_final
    stmt = (
        update(Run)
        .where(Run.id == run_id, Run.status.not_in(FINAL_STATUSES))
        .values(
            status=status,
            error=None if error is None else error.model_dump(mode="json"),
            finished_at=func.clock_timestamp(),
        )
    )
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def get_run_status(session: AsyncSession, run_id: uuid.UUID) -> RunStatus | None:
    return (await session.execute(select(Run.status).where(Run.id == run_id))).scalar_one_or_none()
