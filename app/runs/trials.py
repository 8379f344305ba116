"""All reads and writes of the trials table."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import FINISHED_TRIAL_STATUSES, Trial, TrialStatus
from app.nas.records import TrialRecord, TrialStart
from app.nas.selection import Contender

UNFINISHED = [status for status in TrialStatus if not status.is_final]  # queued, running


async def start_trial(session: AsyncSession, run_id: uuid.UUID, trial: TrialStart) -> None:
    """Create the trial row, or reset it when an interrupted trial is trained again."""
    values = {
        "status": TrialStatus.RUNNING,
        "architecture": trial.architecture,
        "hyperparameters": trial.hyperparameters,
        "params_count": trial.params_count,
        "history": [],
        "epochs_run": 0,
        "error": None,
        "finished_at": None,
    }
    stmt = insert(Trial).values(run_id=run_id, number=trial.number, **values)
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


def _final_values(record: TrialRecord) -> dict[str, Any]:
    """The columns a trial's final record sets."""
    return {
        "status": TrialStatus(record.status),
        "params_count": record.params_count,
        "score": record.score,
        "best_epoch": record.best_epoch,
        "epochs_run": record.epochs_run,
        "history": record.history,
        "error": record.error,
        "duration_s": record.duration_s,
        "record": record.to_dict(),
        "finished_at": func.clock_timestamp(),
    }


async def finish_trial(session: AsyncSession, run_id: uuid.UUID, record: TrialRecord) -> None:
    """Store a trial's final record (completed, pruned or failed)."""
    values = {
        **_final_values(record),
        "architecture": record.architecture,
        "hyperparameters": record.hyperparameters,
    }
    stmt = insert(Trial).values(run_id=run_id, number=record.number, **values)
    stmt = stmt.on_conflict_do_update(constraint="uq_trials_run_id_number", set_=values)
    await session.execute(stmt)


async def finished_records(session: AsyncSession, run_id: uuid.UUID) -> list[TrialRecord]:
    """Final records of the run's finished trials, in trial order (for resuming a search)."""
    stmt = (
        select(Trial.record)
        .where(
            Trial.run_id == run_id,
            Trial.status.in_(FINISHED_TRIAL_STATUSES),
            Trial.record.is_not(None),
        )
        .order_by(Trial.number)
    )
    rows = (await session.execute(stmt)).scalars()
    return [TrialRecord.from_dict(r) for r in rows if r is not None]


async def cancel_unfinished(session: AsyncSession, run_id: uuid.UUID) -> int:
    """End the trials a finished run left queued or running: `cancelled`, with a finish time.

    Called in the transaction that makes the run failed or cancelled, so no trial of an
    ended run stays `running` forever. Returns how many trials it ended.
    """
    stmt = (
        update(Trial)
        .where(Trial.run_id == run_id, Trial.status.in_(UNFINISHED))
        .values(status=TrialStatus.CANCELLED, finished_at=func.clock_timestamp())
    )
    return int((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def trial_progress(
    session: AsyncSession, run_id: uuid.UUID
) -> tuple[int, float | None, float | None]:
    """(finished trials, max score, min score) of a run, in one light aggregate."""
    stmt = select(
        func.count().filter(Trial.status.in_(FINISHED_TRIAL_STATUSES)),
        func.max(Trial.score),
        func.min(Trial.score),
    ).where(Trial.run_id == run_id)
    done, best_max, best_min = (await session.execute(stmt)).one()
    return int(done or 0), best_max, best_min


async def list_trials(session: AsyncSession, run_id: uuid.UUID) -> list[Trial]:
    """A run's trials in trial-number order."""
    stmt = select(Trial).where(Trial.run_id == run_id).order_by(Trial.number)
    return list((await session.execute(stmt)).scalars())


#: What a strategy sees of a trial (`app.pipeline.coordinator.view_of_fields`), in order.
PLANNER_FIELDS = (
    Trial.number,
    Trial.status,
    # The record without its per-epoch history, most of its bytes: every trial's end plans,
    # so this read is per trial and would otherwise decode every trial's whole history.
    Trial.record.op("-", return_type=JSONB)("history").label("record"),
    Trial.request,
    Trial.architecture,
    Trial.epochs_target,
    Trial.epochs_run,
    Trial.parent,
)


async def planner_rows(session: AsyncSession, run_id: uuid.UUID) -> list[Row[Any]]:
    """A run's trials as the planner reads them (`PLANNER_FIELDS`), in number order."""
    stmt = select(*PLANNER_FIELDS).where(Trial.run_id == run_id).order_by(Trial.number)
    return list((await session.execute(stmt)).all())


async def get_trial(session: AsyncSession, run_id: uuid.UUID, number: int) -> Trial | None:
    stmt = select(Trial).where(Trial.run_id == run_id, Trial.number == number)
    return (await session.execute(stmt)).scalar_one_or_none()


# -- trials as queue jobs -------------------------------------------------------------


async def queue_trial(
    session: AsyncSession,
    run_id: uuid.UUID,
    number: int,
    request: dict[str, Any],
    *,
    hyperparameters: dict[str, Any],
    params_count: int,
) -> None:
    """Record trial ``number`` as queued with what its job will train (`TrialRequest`)."""
    await session.execute(
        insert(Trial).values(
            run_id=run_id,
            number=number,
            status=TrialStatus.QUEUED,
            request=request,
            architecture=request["architecture"],
            hyperparameters=hyperparameters,
            params_count=params_count,
            parent=request.get("parent"),
            epochs_target=request["epochs"],
            started_at=None,
        )
    )


async def set_trial_job(session: AsyncSession, run_id: uuid.UUID, number: int, job_id: int) -> None:
    await session.execute(
        update(Trial).where(Trial.run_id == run_id, Trial.number == number).values(job_id=job_id)
    )


async def get_trial_for_update(
    session: AsyncSession, run_id: uuid.UUID, number: int
) -> Trial | None:
    stmt = select(Trial).where(Trial.run_id == run_id, Trial.number == number).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def claim_trial(
    session: AsyncSession, run_id: uuid.UUID, number: int, *, worker: str
) -> None:
    """Mark the (locked, unfinished) trial running on ``worker``; count the attempt."""
    await session.execute(
        update(Trial)
        .where(Trial.run_id == run_id, Trial.number == number)
        .values(
            status=TrialStatus.RUNNING,
            worker=worker,
            attempts=Trial.attempts + 1,
            started_at=func.clock_timestamp(),
            history=[],
            epochs_run=0,
        )
    )


async def end_trial(session: AsyncSession, run_id: uuid.UUID, record: TrialRecord) -> bool:
    """Store the final record of a trial that is still unfinished; False if it already ended.

    The condition is what makes each trial number end exactly once, whatever raced with it
    (a retried job, the run's cancellation).
    """
    result = await session.execute(
        update(Trial)
        .where(
            Trial.run_id == run_id,
            Trial.number == record.number,
            Trial.status.in_(UNFINISHED),
        )
        .values(**_final_values(record))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def cancel_trial(session: AsyncSession, run_id: uuid.UUID, number: int) -> bool:
    """End one unfinished trial as cancelled; False if it had already ended."""
    result = await session.execute(
        update(Trial)
        .where(Trial.run_id == run_id, Trial.number == number, Trial.status.in_(UNFINISHED))
        .values(status=TrialStatus.CANCELLED, finished_at=func.clock_timestamp())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def unfinished_job_ids(session: AsyncSession, run_id: uuid.UUID) -> list[int]:
    """Queue job ids of the run's queued or running trials."""
    stmt = select(Trial.job_id).where(
        Trial.run_id == run_id, Trial.status.in_(UNFINISHED), Trial.job_id.is_not(None)
    )
    return [int(j) for j in (await session.execute(stmt)).scalars() if j is not None]


async def contenders(session: AsyncSession, run_id: uuid.UUID) -> list[Contender]:
    """The run's completed trials with a score, as the selection rule sees them (light)."""
    stmt = (
        select(Trial.number, Trial.score, Trial.params_count)
        .where(
            Trial.run_id == run_id,
            Trial.status == TrialStatus.COMPLETED,
            Trial.score.is_not(None),
        )
        .order_by(Trial.number)
    )
    rows = (await session.execute(stmt)).all()
    found = (Contender.maybe(n, "completed", score, params) for n, score, params in rows)
    return [c for c in found if c is not None]
