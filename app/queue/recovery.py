"""Stalled-job recovery: procrastinate leaves a dead worker's job `doing` forever.

A job is stalled when its worker has sent no heartbeat for `seconds_since_heartbeat`.
A busy worker keeps heartbeating (training runs in a thread, the heartbeat on the event
loop), so its job is never taken from it.
"""

from __future__ import annotations

import asyncio
import logging

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued, ConnectorException

from app.runs.trial_jobs import (
    ADVANCE_PRIORITY,
    RUN_NAS_TASK,
    advance_lock_name,
    run_lock_name,
)

log = logging.getLogger(__name__)


async def retry_stalled_jobs(
    queue_app: procrastinate.App, *, queue: str, seconds_since_heartbeat: float
) -> list[int]:
    """Put the stalled jobs of `queue` back to `todo`; return their ids."""
    manager = queue_app.job_manager
    stalled = await manager.get_stalled_jobs(
        queue=queue, seconds_since_heartbeat=seconds_since_heartbeat
    )
    retried = []
    for job in stalled:
        try:
            await manager.retry_job(job)
        except ConnectorException:
            # Another worker's recovery loop retried it first.
            continue
        assert job.id is not None
        log.warning("job %s was stalled (worker %s gone); retrying it", job.id, job.worker_id)
        retried.append(job.id)
    return retried


#: Running runs (queued through the API: they have a job) that no job of theirs is waiting on
#: or working on. Every transaction that ends a run's job leaves another behind (a suspended
#: advance leaves its trial jobs, a trial's end queues the next trials or defers the next
#: advance), so this finds
#: nothing unless a path forgot to: then the run's next advance is deferred, so no run is
#: ever stranded. `settle_s` skips runs touched in the last seconds (a commit in flight).
STRANDED_RUNS = """
SELECT r.id::text AS run_id FROM runs r
WHERE r.status = 'running' AND r.job_id IS NOT NULL
  AND r.updated_at < now() - make_interval(secs => %(settle_s)s)
  AND NOT EXISTS (
    SELECT 1 FROM procrastinate_jobs j
    WHERE j.status IN ('todo', 'doing')
      AND (j.lock = 'cerebros-run:' || r.id::text
           OR (j.task_name = 'cerebros.run_trial' AND j.args->>'run_id' = r.id::text)
           OR j.id = r.job_id))
"""


async def resume_stranded_runs(
    queue_app: procrastinate.App, *, queue: str, settle_s: float
) -> list[str]:
    """Defer the next advance of every stranded running run (see `STRANDED_RUNS`)."""
    rows = await queue_app.connector.execute_query_all_async(STRANDED_RUNS, settle_s=settle_s)
    resumed = []
    for row in rows:
        run_id = str(row["run_id"])
        try:
            await queue_app.configure_task(
                RUN_NAS_TASK,
                queue=queue,
                lock=run_lock_name(run_id),
                queueing_lock=advance_lock_name(run_id),
                priority=ADVANCE_PRIORITY,
            ).defer_async(run_id=run_id)
        except AlreadyEnqueued:
            continue
        log.warning("run %s had no job waiting or working on it; deferred its next job", run_id)
        resumed.append(run_id)
    return resumed


async def recovery_loop(
    queue_app: procrastinate.App,
    *,
    queues: list[str],
    seconds_since_heartbeat: float,
    interval_s: float,
) -> None:
    """Run `retry_stalled_jobs` every `interval_s` until cancelled; survive database blips."""
    while True:
        for queue in queues:
            try:
                await retry_stalled_jobs(
                    queue_app, queue=queue, seconds_since_heartbeat=seconds_since_heartbeat
                )
                await resume_stranded_runs(queue_app, queue=queue, settle_s=seconds_since_heartbeat)
            except Exception:
                log.warning("stalled-job recovery failed; will try again", exc_info=True)
        await asyncio.sleep(interval_s)
