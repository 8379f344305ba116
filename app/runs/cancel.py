"""Cancel a run: a queued one at once (its job never runs), a running one cooperatively."""

from __future__ import annotations

import uuid

import procrastinate
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.errors import translate_driver_errors
from app.db.models import Run, RunStatus
from app.errors import Conflict, NotFound
from app.events import names
from app.events.publish import RunEvents
from app.runs import repository, trial_jobs

# A running run's worker LISTENs here (CancelWatcher): the payload is the run id.
CANCEL_CHANNEL = "cerebros_cancel"


async def cancel_run(
    sessions: async_sessionmaker[AsyncSession],
    queue: procrastinate.App,
    run_id: uuid.UUID,
    *,
    owner: str | None,
    queue_name: str = "ml",
) -> Run:
    """Cancel the run and return it; idempotent, Conflict for a run that already ended.

    A queued run whose job is still `todo` is cancelled in the same transaction as its job.
    A running run gets `cancel_requested_at`: the training callback sees it within an
    epoch, the saga undoes its completed steps and the run ends `cancelled`.
    """
    async with sessions.begin() as session:
        run = await repository.get_run_for_update(session, run_id)
        if run is None or (owner is not None and run.owner != owner):
            raise NotFound(f"run {run_id} not found")
        if run.status == RunStatus.CANCELLED:
            return run
        if run.status.is_final:
            raise Conflict(
                f"run {run_id} already {run.status}; only queued or running runs can be cancelled"
            )
        if run.cancel_requested_at is None:
            run.cancel_requested_at = func.clock_timestamp()
            # Delivered on commit: the worker stops the training within an epoch.
            await session.execute(select(func.pg_notify(CANCEL_CHANNEL, str(run.id))))
        if run.status == RunStatus.QUEUED and await _cancel_queued_job(session, queue, run):
            run.status = RunStatus.CANCELLED
            run.finished_at = func.clock_timestamp()
            await RunEvents(sessions, run.id).publish(
                names.RUN_CANCELLED, {"reason": "user"}, dedup="run:cancelled", session=session
            )
        elif run.job_id is not None:
            # Its queued trials never start (cancelled with this commit), its running ones
            # stop within an epoch (the notification above), and the run's next job undoes
            # the saga and ends the run, whether or not a trial was still running.
            await trial_jobs.cancel_trial_jobs(session, run.id)
            await trial_jobs.defer_advance(session, queue, run.id, queue_name=queue_name)
        await session.flush()
        await session.refresh(run)
    return run


async def _cancel_queued_job(session: AsyncSession, queue: procrastinate.App, run: Run) -> bool:
    """True when the job was still waiting and is now cancelled (it will never run)."""
    if run.job_id is None:
        return True
    raw = await (await session.connection()).get_raw_connection()
    with translate_driver_errors():  # procrastinate's errors, on a connection of ours
        return await queue.job_manager.cancel_job_by_id_async(
            run.job_id, connection=raw.driver_connection
        )
