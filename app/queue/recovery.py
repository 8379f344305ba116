"""Stalled-job recovery: procrastinate leaves a dead worker's job `doing` forever.

A job is stalled when its worker has sent no heartbeat for `seconds_since_heartbeat`.
A busy worker keeps heartbeating (training runs in a thread, the heartbeat on the event
loop), so its job is never taken from it.
"""

from __future__ import annotations

import asyncio
import logging

import procrastinate
from procrastinate.exceptions import ConnectorException

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
            except Exception:
                log.warning("stalled-job recovery failed; will try again", exc_info=True)
        await asyncio.sleep(interval_s)
