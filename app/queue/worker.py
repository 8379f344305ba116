"""Run a procrastinate worker for the service's queues, with stalled-job recovery."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.config import Settings
from app.queue.app import create_queue_app
from app.queue.recovery import recovery_loop
from app.queue.worker_state import init_worker_resources

log = logging.getLogger(__name__)


async def run_worker(
    database_url: str, settings: Settings, *, queues: list[str], concurrency: int
) -> None:
    """Take jobs until SIGINT/SIGTERM; a job in flight is finished before the worker exits.

    Heartbeats go out every third of the stalled timeout, so one late heartbeat never makes
    a busy worker look dead.
    """
    # Import the Keras engine now: importing it inside the first job would block the event
    # loop (and so the heartbeat) for seconds, and the job would look stalled.
    import app.nas.engine  # noqa: F401

    resources = init_worker_resources(database_url, settings)
    queue_app = create_queue_app(database_url, settings)
    stalled_after = settings.stalled_after_seconds
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
                await queue_app.run_worker_async(
                    queues=queues,
                    concurrency=concurrency,
                    install_signal_handlers=True,
                    update_heartbeat_interval=max(0.5, stalled_after / 3),
                    stalled_worker_timeout=stalled_after,
                )
            finally:
                recovery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recovery
    finally:
        await resources.engine.dispose()
