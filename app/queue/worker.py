"""Run a procrastinate worker for the service's queues, with stalled-job recovery."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from procrastinate import App
from procrastinate.exceptions import ConnectorException
from procrastinate.worker import Worker

from app.config import Settings
from app.observability.logs import bind_job_context
from app.queue.app import create_queue_app
from app.queue.recovery import recovery_loop
from app.queue.tasks import RUNTIME_KEY
from app.runtime import Runtime, create_runtime

log = logging.getLogger(__name__)


async def keep_heartbeat(worker: Worker, interval_s: float) -> None:
    """Send the worker's heartbeat every `interval_s` until cancelled.

    procrastinate cancels its own heartbeat task *before* it waits for the running jobs on
    SIGTERM, so a draining worker would look dead after `stalled_after` seconds and its job
    be retried elsewhere while it still runs. This one is cancelled only once `run` returned.
    """
    while True:
        await asyncio.sleep(interval_s)
        worker_id = worker.worker_id
        if worker_id is None:
            continue  # not registered yet, or already unregistered
        try:
            await worker.app.job_manager.update_heartbeat(worker_id)
        except Exception as exc:  # a database blip: the next beat will do
            log.warning("heartbeat of worker %s failed: %s", worker_id, exc)


async def run_worker(
    database_url: str, settings: Settings, *, queues: list[str], concurrency: int
) -> None:
    """Take jobs until SIGINT/SIGTERM; a job in flight is finished before the worker exits.

    Heartbeats go out every third of the stalled timeout, so one late heartbeat never makes
    a busy worker look dead, and they go on while the worker drains.
    """
    # Import the Keras engine now: importing it inside the first job would block the event
    # loop (and so the heartbeat) for seconds, and the job would look stalled.
    import app.nas.engine  # noqa: F401

    runtime = create_runtime(
        settings, database_url, create_queue_app(database_url, settings), pool_size=4
    )
    queue_app = runtime.queue
    stalled_after = settings.stalled_after_seconds
    heartbeat_s = max(0.5, stalled_after / 3)
    try:
        async with queue_app.open_async():
            recovery = asyncio.create_task(
                recovery_loop(
                    queue_app,
                    queues=queues,
                    seconds_since_heartbeat=stalled_after,
                    interval_s=max(1.0, stalled_after / 3),
                )
            )
            try:
                delay = 1.0
                while not await _work(
                    queue_app,
                    runtime,
                    settings,
                    queues=queues,
                    concurrency=concurrency,
                    heartbeat_s=heartbeat_s,
                ):
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RESTART_MAX_S)
            finally:
                recovery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recovery
    finally:
        await runtime.close()


#: Longest wait before a worker that lost the database looks for jobs again.
RESTART_MAX_S = 10.0


async def _work(
    queue_app: App,
    runtime: Runtime,
    settings: Settings,
    *,
    queues: list[str],
    concurrency: int,
    heartbeat_s: float,
) -> bool:
    """Run one procrastinate worker: True once a signal stopped it, False if it lost Postgres.

    After False the caller starts another after a pause: procrastinate's worker stops with
    `ConnectorException` when fetching a job fails while Postgres is away, and between short
    trial jobs a worker fetches often, so an outage is likely to meet a fetch. A stopped
    worker would leave the host without workers.
    """
    worker = Worker(
        app=queue_app,
        queues=queues,
        concurrency=concurrency,
        install_signal_handlers=True,
        update_heartbeat_interval=heartbeat_s,
        stalled_worker_timeout=settings.stalled_after_seconds,
        fetch_job_polling_interval=settings.job_poll_seconds,
        additional_context={RUNTIME_KEY: runtime},  # what its tasks run with
        worker_middleware=[bind_job_context],  # job_id and run_id on its log lines
    )
    heartbeat = asyncio.create_task(keep_heartbeat(worker, heartbeat_s))
    try:
        await worker.run()  # type: ignore[no-untyped-call]  # procrastinate: untyped
        return True
    except ConnectorException as exc:
        log.warning("the worker lost the database (%s); it looks for jobs again shortly", exc)
        return False
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
