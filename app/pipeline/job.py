"""What a queue job does with a run: load it, run the pipeline, record the outcome.

Error mapping: retryable errors (`CerebrosError.retryable`: the database away, ...) and the
saga's interruptions become `TransientError` (the queue retries and the saga resumes);
everything else ends the run for good, with the reason stored on it. Whatever the path, a
run that fails has every completed step undone first, and the job returns normally only once
its run is final.
"""

from __future__ import annotations

import logging
import uuid

from pydantic import ValidationError

from app.errors import CerebrosError, InvalidJobArguments, TransientError
from app.nas.spec import NasSpec
from app.pipeline.errors import RunFailed
from app.pipeline.run_lock import run_lock
from app.pipeline.run_saga import abort_run, run_pipeline, saga_unfinished
from app.runs import repository
from app.runtime import Runtime
from app.saga import StepInterrupted, StepSuspended
from app.schemas.runs import RunError

log = logging.getLogger(__name__)

__all__ = ["RunFailed", "execute_run_job"]


async def execute_run_job(
    runtime: Runtime,
    run_id: uuid.UUID,
    *,
    final_attempt: bool = False,
    trials_via_queue: bool = False,
) -> None:
    """Execute (or resume) the run; return only when it is final, or waits on its trials.

    With ``trials_via_queue`` (a worker's job) the run's trials are queue jobs: the job
    returns while they train; each one's end queues the next trials, and the last one's
    defers the run's next job. Raises
    `RunFailed` when the run ended failed and `TransientError` when the job should be
    retried (the saga resumes where it stopped).
    """
    async with run_lock(runtime.engine, run_id):
        async with runtime.sessions.begin() as session:
            run = await repository.claim_run(session, run_id)
        if run is None:
            raise RunFailed(f"run {run_id} does not exist")
        if run.status.is_final and not await saga_unfinished(runtime, run_id):
            log.info("run %s is already %s; nothing to do", run_id, run.status)
            return
        try:
            try:
                spec = NasSpec.model_validate(run.spec)  # once: the steps get it typed
            except ValidationError as exc:
                message = f"invalid run spec: {exc.errors(include_url=False)}"
                raise InvalidJobArguments(message) from exc
            await run_pipeline(
                runtime, run, spec, final_attempt=final_attempt, trials_via_queue=trials_via_queue
            )
        except StepSuspended as suspended:
            # Trials train on the workers; the last of them to end defers our next job.
            log.info("run %s: %s", run_id, suspended)
            return
        except RunFailed:
            raise
        except InvalidJobArguments as exc:
            await _abort(runtime, run_id, _error("invalid_arguments", exc), final_attempt)
        except Exception as exc:
            if _retryable(exc):
                if not final_attempt:
                    raise TransientError(f"run {run_id}: {exc}") from exc
                log.warning("run %s: last attempt interrupted (%s); failing it", run_id, exc)
                await _abort(runtime, run_id, _error("transient_exhausted", exc), True)
            else:
                log.exception("run %s failed unexpectedly", run_id)
                await _abort(runtime, run_id, _error("internal", exc), final_attempt)
    await _check_final(runtime, run_id)


def _retryable(exc: BaseException) -> bool:
    # StepInterrupted covers the saga's own interruptions (a pivot to rerun, an undo to retry).
    return isinstance(exc, StepInterrupted) or (isinstance(exc, CerebrosError) and exc.retryable)


def _error(kind: str, exc: BaseException) -> RunError:
    message = exc.detail if isinstance(exc, InvalidJobArguments) else str(exc)
    return RunError(type=kind, error=type(exc).__name__, message=message[:2000])


async def _abort(runtime: Runtime, run_id: uuid.UUID, error: RunError, final_attempt: bool) -> None:
    """Undo and end the run (`abort_run`); the job fails unless the user cancelled it."""
    try:
        cancelled = await abort_run(runtime, run_id, error, final_attempt=final_attempt)
    except Exception as exc:
        if _retryable(exc) and not final_attempt:
            raise TransientError(f"run {run_id}: could not end it yet: {exc}") from exc
        raise
    if not cancelled:
        raise RunFailed(error.message)


async def _check_final(runtime: Runtime, run_id: uuid.UUID) -> None:
    """The job's last guard: never let the queue mark it succeeded while the run is not final."""
    async with runtime.sessions() as session:
        status = await repository.get_run_status(session, run_id)
    if status is not None and not status.is_final:
        raise TransientError(f"run {run_id} is still {status} after its execution; retrying")
