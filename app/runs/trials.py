"""All reads and writes of the trials table."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Trial

RUNNING = "running"
FINAL_TRIAL_STATUSES = ("completed", "pruned", "failed")


async def start_trial(
    session: AsyncSession,
    run_id: uuid.UUID,
    number: int,
    *,
    architecture: dict[str, Any],
    hyperparameters: dict[str, Any],
    params_count: int,
) -> None:
    """Create the trial row, or reset it when an interrupted trial is trained again."""
    values = {
        "status": RUNNING,
        "architecture": architecture,
        "hyperparameters": hyperparameters,
        "params_count": params_count,
        "history": [],
        "epochs_run": 0,
        "error": None,
        "finished_at": None,
    }
    stmt = insert(Trial).values(run_id=run_id, number=number, **values)
    stmt = stmt.on_conflict_do_update(
        constraint="uq_trials_run_id_number",
        set_={**values, "started_at": func.clock_timestamp()},
    )
    await session.execute(stmt)


async def record_epoch(
    session: AsyncSession, run_id: uuid.UUID, number: int, metrics: dict[str, Any]
) -> None:
    """Append one epoch's metrics to the trial's history."""
    await session.execute(
        update(Trial)
        .where(Trial.run_id == run_id, Trial.number == number)
        .values(
            history=Trial.history.op("||", return_type=JSONB)(literal([metrics], JSONB)),
            epochs_run=Trial.epochs_run + 1,
        )
    )


async def finish_trial(session: AsyncSession, run_id: uuid.UUID, record: dict[str, Any]) -> None:
    """Store a trial's final record (completed, pruned or failed)."""
    values = {
        "status": record["status"],
        "architecture": record.get("architecture"),
        "hyperparameters": record.get("hyperparameters"),
        "params_count": record.get("params_count"),
        "score": record.get("score"),
        "best_epoch": record.get("best_epoch"),
        "epochs_run": record.get("epochs_run", 0),
        "history": record.get("history", []),
        "error": record.get("error"),
        "duration_s": record.get("duration_s"),
        "record": record,
        "finished_at": func.clock_timestamp(),
    }
    stmt = insert(Trial).values(run_id=run_id, number=record["number"], **values)
    stmt = stmt.on_conflict_do_update(constraint="uq_trials_run_id_number", set_=values)
    await session.execute(stmt)


async def finished_records(session: AsyncSession, run_id: uuid.UUID) -> list[dict[str, Any]]:
    """Final records of the run's finished trials, in trial order (for resuming a search)."""
    stmt = (
        select(Trial.record)
        .where(
            Trial.run_id == run_id,
            Trial.status.in_(FINAL_TRIAL_STATUSES),
            Trial.record.is_not(None),
        )
        .order_by(Trial.number)
    )
    return [r for r in (await session.execute(stmt)).scalars() if r is not None]


async def cancel_unfinished(session: AsyncSession, run_id: uuid.UUID) -> int:
    """End the trials a finished run left queued or running: `cancelled`, with a finish time.

    Called in the transaction that makes the run failed or cancelled, so no trial of an
    ended run stays `running` forever. Returns how many trials it ended.
    """
    stmt = (
        update(Trial)
        .where(Trial.run_id == run_id, Trial.status.in_(("queued", RUNNING)))
        .values(status="cancelled", finished_at=func.clock_timestamp())
    )
    return int((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]
