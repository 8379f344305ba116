"""What a queue job does with a run: load it, run the pipeline, record the outcome.

Error mapping: infrastructure errors become `TransientError` (the queue retries and the
saga resumes); everything else fails the run for good, with the reason stored on it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from pydantic import ValidationError

from app.db.models import RunStatus
from app.errors import InvalidJobArguments
from app.nas.spec import NasSpec
from app.pipeline.run_lock import run_lock
from app.queue.retry import TransientError, is_transient
from app.queue.worker_state import WorkerResources
from app.runs import repository

log = logging.getLogger(__name__)


class RunFailed(Exception):
    """The run ended failed (its reason is stored on the run); the job must not retry."""


async def execute_run_job(
    resources: WorkerResources, run_id: uuid.UUID, *, final_attempt: bool = False
) -> None:
    from app.pipeline.run_saga import run_pipeline

    try:
        async with run_lock(resources.engine, run_id) as acquired:
            if not acquired:
                log.warning("run %s is being executed by another worker; skipping", run_id)
                return
            async with resources.sessions.begin() as session:
                run = await repository.mark_running(session, run_id)
                if run is None:
                    existing = await repository.get_run(session, run_id)
            if run is None:
                if existing is None:
                    raise InvalidJobArguments(f"run {run_id} does not exist")
                log.info("run %s is already %s; nothing to do", run_id, existing.status)
                return
            NasSpec.model_validate(run.spec)  # a stored spec that no longer validates: no retry
            await run_pipeline(resources, run)
    except InvalidJobArguments as exc:
        await _fail(resources, run_id, {"type": "invalid_arguments", "message": exc.detail})
        raise RunFailed(exc.detail) from exc
    except ValidationError as exc:
        message = f"invalid run spec: {exc.errors(include_url=False)}"
        await _fail(resources, run_id, {"type": "invalid_arguments", "message": message})
        raise RunFailed(message) from exc
    except RunFailed:
        raise
    except Exception as exc:
        if is_transient(exc):
            if final_attempt:
                await _fail(resources, run_id, _error("transient_exhausted", exc), quiet=True)
            raise TransientError(f"run {run_id}: {exc}") from exc
        log.exception("run %s failed unexpectedly", run_id)
        await _fail(resources, run_id, _error("internal", exc))
        raise RunFailed(str(exc)) from exc


def _error(kind: str, exc: BaseException) -> dict[str, Any]:
    return {"type": kind, "error": type(exc).__name__, "message": str(exc)[:2000]}


async def _fail(
    resources: WorkerResources, run_id: uuid.UUID, error: dict[str, Any], *, quiet: bool = False
) -> None:
    try:
        async with resources.sessions.begin() as session:
            await repository.finish_run(session, run_id, RunStatus.FAILED, error=error)
    except Exception:
        if not quiet:
            raise
        log.warning("could not record the failure of run %s", run_id, exc_info=True)
