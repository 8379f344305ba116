"""The NAS run saga: the seed's seven steps on the durable saga engine."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Run, RunStatus
from app.events import names
from app.events.publish import RunEvents
from app.nas.spec import NasSpec
from app.pipeline.errors import RunFailed
from app.pipeline.steps import RunSteps
from app.runs import repository, trial_jobs, trials
from app.runs.cancel import CANCEL_CHANNEL
from app.runtime import Runtime
from app.saga import (
    FaultInjector,
    Input,
    PostgresSagaStore,
    Result,
    Saga,
    SagaFailed,
    SagaListener,
    SagaRunner,
    Step,
    StepMiddleware,
)
from app.schemas.runs import RunError, UndoRecord

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger(__name__)

STEP_NAMES = (
    "check_enabled",
    "ensure_run_id",
    "publish_start_event",
    "execute_nas_run",
    "process_results",
    "publish_complete_event",
    "store_result",
)


def build_run_saga(steps: RunSteps) -> Saga:
    """The seed's seven steps; `store_result` is the pivot (see `RunSteps.store_result`).

    The steps read the run's id and spec from `steps`; `ensure_run_id` checks the saga's JSON
    run id against it once, and every later step runs after it.
    """
    return Saga(
        "nas_run",
        [
            Step("check_enabled", run=steps.check_enabled),
            Step(
                "ensure_run_id",
                run=steps.ensure_run_id,
                inputs={"run_id": Input("run_id")},
                after=["check_enabled"],
            ),
            Step(
                "publish_start_event",
                run=steps.publish_start_event,
                compensate=steps.compensate_start_event,
                undo=steps.publish_cancelled_event,
                after=["ensure_run_id"],
            ),
            Step(
                "execute_nas_run",
                run=steps.execute_nas_run,
                compensate=steps.compensate_nas_run,
                undo=steps.remove_artifacts,
                after=["ensure_run_id", "publish_start_event"],
            ),
            Step(
                "process_results",
                run=steps.process_results,
                inputs={"result": Result("execute_nas_run")},
            ),
            Step(
                "publish_complete_event",
                run=steps.publish_complete_event,
                inputs={"summary": Result("process_results")},
                after=["ensure_run_id"],
            ),
            Step(
                "store_result",
                run=steps.store_result,
                inputs={
                    "summary": Result("process_results"),
                    "completed_event": Result("publish_complete_event"),
                },
                after=["ensure_run_id"],
                pivot=True,
            ),
        ],
    )


class RunSagaListener(SagaListener):
    """Shows where a run is: its current step on the row, and one event per step change."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> None:
        self.sessions = sessions
        self.run_id = run_id
        self.events = RunEvents(sessions, run_id)

    async def step_started(self, saga_id: str, step: str, attempt: int) -> None:
        async with self.sessions.begin() as session:
            await repository.set_current_step(session, self.run_id, step)
            await self.events.publish(
                names.STEP_STARTED,
                {"step": step, "attempt": attempt},
                dedup=f"step:{step}:{attempt}:started",
                session=session,
            )

    async def step_succeeded(self, saga_id: str, step: str, result: Any) -> None:
        await self.events.publish(
            names.STEP_SUCCEEDED, {"step": step}, dedup=f"step:{step}:succeeded"
        )

    async def step_failed(self, saga_id: str, step: str, error: BaseException) -> None:
        payload = {"step": step, "error": type(error).__name__, "message": str(error)}
        await self.events.publish(names.STEP_FAILED, payload)

    async def step_undone(self, saga_id: str, step: str, error: BaseException | None) -> None:
        payload: dict[str, Any] = {"step": step, "undo_failed": error is not None}
        if error is not None:
            payload["error"] = f"{type(error).__name__}: {error}"
        # Only a successful undo is deduplicated: a failed one is retried and reported again.
        dedup = f"step:{step}:undone" if error is None else None
        await self.events.publish(names.STEP_UNDONE, payload, dedup=dedup)


def step_middleware(settings: Settings) -> list[StepMiddleware]:
    """What wraps the run saga's steps: fault injection when configured (tests of every path)."""
    names = settings.fault_step_names
    return [FaultInjector.parse(names)] if names else []


def _runner(resources: Runtime, run_id: uuid.UUID, final: bool) -> SagaRunner:
    return SagaRunner(
        PostgresSagaStore(resources.sessions),
        listener=RunSagaListener(resources.sessions, run_id),
        middleware=step_middleware(resources.settings),
        final_attempt=final,
    )


async def run_pipeline(
    resources: Runtime,
    run: Run,
    spec: NasSpec,
    *,
    final_attempt: bool = True,
    trials_via_queue: bool = False,
) -> None:
    """Run (or resume) the run's saga; on success the run is already `succeeded` (its pivot).

    `spec` is the run's stored spec, validated by the caller. Raises `RunFailed` when the
    saga failed (the run is marked failed with the step, cause and undo outcomes).
    Interruptions (`StepInterrupted`, `UndoIncomplete`, infrastructure errors) propagate so
    the job is retried and the saga resumes.
    """
    steps = RunSteps(
        resources.settings,
        resources.sessions,
        run.id,
        spec=spec,
        database_url=resources.database_url,
        runtime=resources,
        trials_via_queue=trials_via_queue,
    )
    try:
        await _runner(resources, run.id, final_attempt).run(
            build_run_saga(steps),
            saga_id=str(run.id),
            # The saga's JSON record of what it runs; a resumed saga must be given the
            # inputs it was started with, so the spec is the stored one, as stored.
            inputs={"run_id": str(run.id), "spec": run.spec},
        )
    except SagaFailed as failed:
        if not await record_failure(resources.sessions, run.id, saga_error(failed)):
            raise RunFailed(str(failed)) from failed


def saga_error(failed: SagaFailed) -> RunError:
    """The run's error for its failed saga: the step, its error and the undo outcomes."""
    return RunError.model_validate(failed.to_dict())


async def abort_run(
    resources: Runtime, run_id: uuid.UUID, error: RunError, *, final_attempt: bool
) -> bool:
    """End a run that failed outside its saga's steps (internal error, retries exhausted).

    Undoes every step the saga completed, newest first (publishing `run.cancelled` if it had
    started), then makes the run failed (or cancelled, if the user asked) with `error` and
    the undo outcomes. A run already succeeded (its pivot committed) is left alone. Returns
    True when the run ended cancelled. Raises `UndoIncomplete` when an undo failed and
    attempts are left, so the job retries it.
    """
    async with resources.sessions() as session:
        run = await repository.get_run(session, run_id)
    if run is None or run.status == RunStatus.SUCCEEDED:
        return False
    # Only undos run here: the steps need no spec (the stored one may be what is wrong).
    steps = RunSteps(resources.settings, resources.sessions, run_id)
    outcomes = await _runner(resources, run_id, final_attempt).cancel(
        build_run_saga(steps),
        saga_id=str(run_id),
        reason=error.message,
        # The undos' `ctx.failure`, unless the saga was already failing for its own reason.
        failure=error.model_dump(mode="json", exclude={"undo"}),
    )
    undo = [UndoRecord.model_validate(o.to_dict()) for o in outcomes]
    return await record_failure(resources.sessions, run_id, error.model_copy(update={"undo": undo}))


async def saga_unfinished(resources: Runtime, run_id: uuid.UUID) -> bool:
    """True when the run's saga is stored and still running (a pivot or an undo to finish)."""
    record = await PostgresSagaStore(resources.sessions).load(str(run_id))
    return record is not None and record.status == "running"


async def record_failure(
    sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID, error: RunError
) -> bool:
    """Make the run failed (or cancelled, when the user asked); return True if cancelled.

    One transaction: the status, the error, the end of any trial left running, and the
    terminal event (`run.failed`, or `run.cancelled` with reason "user", published once).
    """
    async with sessions.begin() as session:
        run = await repository.get_run_for_update(session, run_id)
        if run is None:
            return False
        if run.status.is_final:
            return run.status == RunStatus.CANCELLED
        cancelled = run.cancel_requested_at is not None
        status = RunStatus.CANCELLED if cancelled else RunStatus.FAILED
        await repository.finish_run(session, run_id, status, error=error)
        await trial_jobs.cancel_trial_jobs(session, run_id)  # before: it reads their rows
        await trials.cancel_unfinished(session, run_id)
        # Trials still training on other workers hear it on commit and stop within an epoch.
        await session.execute(select(func.pg_notify(CANCEL_CHANNEL, str(run_id))))
        payload = {"step": error.step, "error": error.type, "message": error.message}
        await RunEvents(sessions, run_id).publish(
            names.RUN_CANCELLED if cancelled else names.RUN_FAILED,
            {**payload, "reason": "user"} if cancelled else payload,
            dedup="run:cancelled" if cancelled else "run:failed",
            session=session,
        )
    return cancelled
