"""The `ml` queue's tasks. Thin: validate arguments, hand the run to the pipeline."""

from __future__ import annotations

import logging
import uuid

import procrastinate
from procrastinate import JobContext

from app.config import Settings
from app.errors import CerebrosError, InvalidJobArguments
from app.queue.retry import RetryRetryableErrors
from app.runs.trial_jobs import RUN_NAS_TASK, RUN_TRIAL_TASK
from app.runtime import Runtime

log = logging.getLogger(__name__)

RUNTIME_KEY = "runtime"  # the worker's `additional_context` entry holding its `Runtime`


class MissingRuntime(CerebrosError):
    """A task ran in a worker that was not given the process's `Runtime`."""


def register_tasks(app: procrastinate.App, settings: Settings) -> None:
    """Register the service's tasks on `app`.

    A function rather than a module-level Blueprint: procrastinate mutates a blueprint's
    tasks when an app adopts them, so one blueprint cannot serve several apps in a process.
    """
    # Only retryable errors (the database away, an interrupted saga) are worth another
    # attempt; a run that failed on its own merits (bad spec, saga failure) is final and
    # recorded on the run, a trial that failed on its own is recorded failed. A worker that
    # died mid-trial is the stalled-job recovery's (bounded by max_trial_retries, counted
    # on the trial's row).
    retry = RetryRetryableErrors(
        max_attempts=settings.job_max_attempts,
        exponential_wait=max(1, round(settings.job_retry_wait_seconds)),
    )
    for name, function in ((RUN_NAS_TASK, run_nas), (RUN_TRIAL_TASK, run_trial)):
        app.task(name=name, queue=settings.queue_name, pass_context=True, retry=retry)(function)


def runtime_of(context: JobContext) -> Runtime:
    """The worker process's runtime, passed to every job in `additional_context`."""
    runtime = context.additional_context.get(RUNTIME_KEY)
    if not isinstance(runtime, Runtime):
        raise MissingRuntime(
            f"the worker gave no runtime to its jobs (additional_context[{RUNTIME_KEY!r}]); "
            "start workers with `cerebros worker`"
        )
    return runtime


async def run_nas(context: JobContext, run_id: str) -> None:
    """Execute one NAS run; on retry the run's saga resumes where it stopped."""
    # Deliberately lazy: the pipeline imports Keras, which the API (it only defers this task)
    # must not load.
    from app.pipeline.job import execute_run_job

    job = context.job
    try:
        parsed = uuid.UUID(str(run_id))
    except ValueError:
        log.error("job %s: invalid run_id %r, failing without retry", job.id, run_id)
        raise InvalidJobArguments(f"run_id {run_id!r} is not a UUID") from None
    runtime = runtime_of(context)
    final_attempt = job.attempts + 1 >= runtime.settings.job_max_attempts
    await execute_run_job(runtime, parsed, final_attempt=final_attempt, trials_via_queue=True)


async def run_trial(context: JobContext, run_id: str, trial: int) -> None:
    """Train one trial of a run, then queue the run's next trials (or defer its advance)."""
    from app.pipeline.trial_job import execute_trial_job  # Keras: see run_nas

    job = context.job
    try:
        parsed = uuid.UUID(str(run_id))
        number = int(trial)
    except (TypeError, ValueError):
        log.error("job %s: invalid arguments %r, %r; failing", job.id, run_id, trial)
        raise InvalidJobArguments(f"run_id {run_id!r} / trial {trial!r} are invalid") from None
    runtime = runtime_of(context)
    final_attempt = job.attempts + 1 >= runtime.settings.job_max_attempts
    await execute_trial_job(
        runtime, parsed, number, final_attempt=final_attempt, trials_via_queue=True
    )
