"""A run's queue jobs beyond its first: its trials (`cerebros.run_trial`) and its "advance".

Every deferral here goes in the caller's transaction (procrastinate inserts the job on our
connection), so a trial row and its job, or a trial's end and the run's next advance, commit
together or not at all.

* A trial job trains one trial on any worker of any host.
* The run's "advance" is its `cerebros.run_nas` job deferred again: the saga resumes, its
  coordinating step asks the strategy what next and queues it. It is serialized per run
  with procrastinate's ``lock`` (two never run at once) and ``queueing_lock`` (at most one
  waits), and it has a higher priority than trials, so a freed worker coordinates before it
  trains and no run waits behind another run's backlog of trials.
"""

from __future__ import annotations

import uuid
from typing import Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.errors import translate_driver_errors

__all__ = [
    "ADVANCE_PRIORITY",
    "advance_lock_name",
    "cancel_trial_jobs",
    "defer_advance",
    "defer_job",
    "defer_trial",
    "live_workers",
    "orphaned_trials",
    "run_lock_name",
]

#: procrastinate runs higher priorities first: coordinating a run takes milliseconds and
#: keeps every worker fed.
ADVANCE_PRIORITY = 10
RUN_NAS_TASK = "cerebros.run_nas"
RUN_TRIAL_TASK = "cerebros.run_trial"


def run_lock_name(run_id: uuid.UUID | str) -> str:
    """The procrastinate ``lock`` of a run's `cerebros.run_nas` jobs: one at a time per run."""
    return f"cerebros-run:{run_id}"


def advance_lock_name(run_id: uuid.UUID | str) -> str:
    """The ``queueing_lock`` of a run's advance: at most one waits."""
    return f"cerebros-advance:{run_id}"


async def defer_job(
    session: AsyncSession,
    queue: procrastinate.App,
    task: str,
    *,
    queue_name: str,
    kwargs: dict[str, Any],
    lock: str | None = None,
    queueing_lock: str | None = None,
    priority: int = 0,
) -> int | None:
    """Defer ``task`` in the session's transaction; its job id, or None if one already waits.

    ``None`` only with a ``queueing_lock`` that a waiting job holds: that job will do the
    work. A savepoint keeps the refused insert from aborting the caller's transaction.
    """
    raw = await (await session.connection()).get_raw_connection()
    deferrer = queue.configure_task(
        task,
        allow_unknown=False,
        queue=queue_name,
        lock=lock,
        queueing_lock=queueing_lock,
        priority=priority,
        connection=raw.driver_connection,
    )
    try:
        async with session.begin_nested():
            with translate_driver_errors():  # procrastinate's errors, on a connection of ours
                return int(await deferrer.defer_async(**kwargs))
    except AlreadyEnqueued:
        return None


async def defer_trial(
    session: AsyncSession,
    queue: procrastinate.App,
    run_id: uuid.UUID,
    number: int,
    *,
    queue_name: str,
) -> int:
    job_id = await defer_job(
        session,
        queue,
        RUN_TRIAL_TASK,
        queue_name=queue_name,
        kwargs={"run_id": str(run_id), "trial": number},
    )
    assert job_id is not None  # no queueing lock: never refused
    return job_id


async def defer_advance(
    session: AsyncSession, queue: procrastinate.App, run_id: uuid.UUID, *, queue_name: str
) -> int | None:
    """Defer the run's next `cerebros.run_nas` job unless one is already waiting."""
    return await defer_job(
        session,
        queue,
        RUN_NAS_TASK,
        queue_name=queue_name,
        kwargs={"run_id": str(run_id)},
        lock=run_lock_name(run_id),
        queueing_lock=advance_lock_name(run_id),
        priority=ADVANCE_PRIORITY,
    )


async def cancel_trial_jobs(session: AsyncSession, run_id: uuid.UUID) -> int:
    """Cancel the queue jobs of the run's unfinished trials, in the caller's transaction.

    A waiting job is cancelled (it never runs); a running one is asked to abort (its worker
    also hears the run's cancel notification and stops within an epoch). procrastinate's
    own `procrastinate_cancel_job_v1`, as its job manager calls it.
    """
    result = await session.execute(
        text(
            "SELECT count(procrastinate_cancel_job_v1(job_id, true, false)) FROM trials "
            "WHERE run_id = :run_id AND status IN ('queued', 'running') AND job_id IS NOT NULL"
        ),
        {"run_id": run_id},
    )
    return int(result.scalar_one())


async def orphaned_trials(session: AsyncSession, run_id: uuid.UUID) -> list[int]:
    """Unfinished trials of the run whose queue job has ended.

    Failed, cancelled, aborted, or succeeded without recording them: nothing will ever end
    them but the coordinator.
    """
    result = await session.execute(
        text(
            "SELECT t.number FROM trials t JOIN procrastinate_jobs j ON j.id = t.job_id "
            "WHERE t.run_id = :run_id AND t.status IN ('queued', 'running') "
            "AND j.status NOT IN ('todo', 'doing') ORDER BY t.number"
        ),
        {"run_id": run_id},
    )
    return [int(n) for n in result.scalars()]


async def live_workers(session: AsyncSession, *, seconds_since_heartbeat: float) -> int:
    """Workers (processes) whose heartbeat is recent: how many trials can train at once."""
    result = await session.execute(
        text(
            "SELECT count(*) FROM procrastinate_workers "
            "WHERE last_heartbeat > now() - make_interval(secs => :seconds)"
        ),
        {"seconds": seconds_since_heartbeat},
    )
    return int(result.scalar_one())
