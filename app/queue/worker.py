"""Run a procrastinate worker for the service's queues."""

from __future__ import annotations

import logging

from app.config import Settings
from app.queue.app import create_queue_app
from app.queue.worker_state import init_worker_resources

log = logging.getLogger(__name__)


async def run_worker(
    database_url: str, settings: Settings, *, queues: list[str], concurrency: int
) -> None:
    """Take jobs until SIGINT/SIGTERM; a job in flight is finished or released for retry."""
    resources = init_worker_resources(database_url, settings)
    queue_app = create_queue_app(database_url)
    try:
        async with queue_app.open_async():
            await queue_app.run_worker_async(
                queues=queues,
                concurrency=concurrency,
                install_signal_handlers=True,
            )
    finally:
        await resources.engine.dispose()
