"""The `ml` queue's tasks. Thin: validate arguments, hand the run to the pipeline."""

from __future__ import annotations

import logging
import uuid

import procrastinate
from procrastinate import JobContext, RetryStrategy

from app.config import get_settings
from app.errors import InvalidJobArguments
from app.queue.retry import TransientError

log = logging.getLogger(__name__)

tasks = procrastinate.Blueprint()
_settings = get_settings()


@tasks.task(
    name="run_nas",
    queue=_settings.queue_name,
    pass_context=True,
    # Only infrastructure errors are worth another attempt; a run that failed on its own
    # merits (bad spec, saga failure) is final and recorded on the run.
    retry=RetryStrategy(
        max_attempts=_settings.job_max_attempts,
        exponential_wait=int(_settings.job_retry_wait_seconds),
        retry_exceptions={TransientError},
    ),
)
async def run_nas(context: JobContext, run_id: str) -> None:
    """Execute one NAS run; on retry the run's saga resumes where it stopped."""
    from app.pipeline.job import execute_run_job
    from app.queue.worker_state import get_worker_resources

    job = context.job
    try:
        parsed = uuid.UUID(str(run_id))
    except ValueError:
        log.error("job %s: invalid run_id %r, failing without retry", job.id, run_id)
        raise InvalidJobArguments(f"run_id {run_id!r} is not a UUID") from None
    resources = get_worker_resources()
    final_attempt = job.attempts + 1 >= _settings.job_max_attempts
    await execute_run_job(resources, parsed, final_attempt=final_attempt)
