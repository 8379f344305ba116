"""The NAS run saga: the seed's seven steps on the durable saga engine."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Run, RunStatus
from app.events import names
from app.events.publish import publish_event
from app.pipeline.errors import RunFailed
from app.pipeline.steps import RunSteps
from app.queue.worker_state import WorkerResources
from app.runs import repository, trials
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
    """The seed's seven steps; `store_result` is the pivot (see `RunSteps.store_result`)."""
    run_id = {"run_id": Result("ensure_run_id")}
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
                inputs={**run_id, "spec": Input("spec")},
            ),
            Step(
                "execute_nas_run",
                run=steps.execute_nas_run,
                compensate=steps.compensate_nas_run,
                undo=steps.remove_artifacts,
                inputs={**run_id, "spec": Input("spec")},
                after=["publish_start_event"],
            ),
            Step(
                "process_results",
                run=steps.process_results,
                inputs={"result": Result("execute_nas_run")},
            ),
            Step(
                "publish_complete_event",
                run=steps.publish_complete_event,
                inputs={**run_id, "summary": Result("process_results")},
            ),
            Step(
                "store_result",
                run=steps.store_result,
                inputs={
                    **run_id,
                    "summary": Result("process_results"),
                    "completed_event": Result("publish_complete_event"),
                },
                pivot=True,
            ),
        ],
    )


class RunSagaListener(SagaListener):
    """Shows where a run is: its current step on the row, and one event per step change."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID, steps: RunSteps
    ) -> None:
        self.sessions = sessions
        self.run_id = run_id
        self.steps = steps

    async def _publish(
        self, name: str, payload: dict[str, Any], dedup: str | None, current_step: str | None = None
    ) -> None:
        async with self.sessions.begin() as session:
            if current_step is not None:
                await repository.set_current_step(session, self.run_id, current_step)
            await publish_event(session, self.run_id, name, payload, dedup_key=dedup)

    async def step_started(self, saga_id: str, step: str, attempt: int) -> None:
        await self._publish(
            names.STEP_STARTED,
            {"step": step, "attempt": attempt},
            f"step:{step}:{attempt}:started",
            current_step=step,
        )

    async def step_succeeded(self, saga_id: str, step: str, result: Any) -> None:
        await self._publish(names.STEP_SUCCEEDED, {"step": step}, f"step:{step}:succeeded")

    async def step_failed(self, saga_id: str, step: str, error: BaseException) -> None:
        self.steps.failure_reason = f"{step} failed: {type(error).__name__}: {error}"
        await self._publish(
            names.STEP_FAILED,
            {"step": step, "error": type(error).__name__, "message": str(error)},
            None,
        )

    async def step_undone(self, saga_id: str, step: str, error: BaseException | None) -> None:
        payload: dict[str, Any] = {"step": step, "undo_failed": error is not None}
        if error is not None:
            payload["error"] = f"{type(error).__name__}: {error}"
        # Only a successful undo is deduplicated: a failed one is retried and reported again.
        dedup = f"step:{step}:undone" if error is None else None
        await self._publish(names.STEP_UNDONE, payload, dedup)


def step_middleware(settings: Settings) -> list[StepMiddleware]:
    """What wraps the run saga's steps: fault injection when configured (tests of every path)."""
    names = settings.fault_step_names
    return [FaultInjector.parse(names)] if names else []


def _runner(
    resources: WorkerResources, run_id: uuid.UUID, steps: RunSteps, final: bool
) -> SagaRunner:
    return SagaRunner(
        PostgresSagaStore(resources.sessions),
        listener=RunSagaListener(resources.sessions, run_id, steps),
        middleware=step_middleware(resources.settings),
        final_attempt=final,
    )


async def run_pipeline(resources: WorkerResources, run: Run, *, final_attempt: bool = True) -> None:
    """Run (or resume) the run's saga; on success the run is already `succeeded` (its pivot).

    Raises `RunFailed` when the saga failed (the run is marked failed with the step, cause
    and undo outcomes). Interruptions (`StepInterrupted`, `UndoIncomplete`, infrastructure
    errors) propagate so the job is retried and the saga resumes.
    """
    steps = RunSteps(resources.settings, resources.sessions, run.id, resources.database_url)
    runner = _runner(resources, run.id, steps, final_attempt)
    try:
        await runner.run(
            build_run_saga(steps),
            saga_id=str(run.id),
            inputs={"run_id": str(run.id), "spec": run.spec},
        )
    except SagaFailed as failed:
        if not await record_failure(resources.sessions, run.id, failed.to_dict()):
            raise RunFailed(str(failed)) from failed


async def abort_run(
    resources: WorkerResources, run_id: uuid.UUID, error: dict[str, Any], *, final_attempt: bool
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
    steps = RunSteps(resources.settings, resources.sessions, run_id)
    steps.failure_reason = f"{error.get('type')}: {error.get('message')}"
    outcomes = await _runner(resources, run_id, steps, final_attempt).cancel(
        build_run_saga(steps),
        saga_id=str(run_id),
        reason=str(error.get("message")),
        failure={"step": None, **error},
    )
    return await record_failure(
        resources.sessions, run_id, {**error, "undo": [o.to_dict() for o in outcomes]}
    )


async def saga_unfinished(resources: WorkerResources, run_id: uuid.UUID) -> bool:
    """True when the run's saga is stored and still running (a pivot or an undo to finish)."""
    record = await PostgresSagaStore(resources.sessions).load(str(run_id))
    return record is not None and record.status == "running"


async def record_failure(
    sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID, error: dict[str, Any]
) -> bool:
    """Make the run failed (or cancelled, when the user asked); return True if cancelled.

    One transaction: the status, the error, the end of any trial left running, and the
    terminal event (`run.failed`, or `run.cancelled` with reason "user", published once).
    """
    async with sessions.begin() as session:
        run = await repository.get_run_for_update(session, run_id)
        if run is None:
            return False
        if RunStatus(run.status).is_final:
            return run.status == RunStatus.CANCELLED
        cancelled = run.cancel_requested_at is not None
        status = RunStatus.CANCELLED if cancelled else RunStatus.FAILED
        await repository.finish_run(session, run_id, status, error=error)
        await trials.cancel_unfinished(session, run_id)
        await publish_event(
            session,
            run_id,
            names.RUN_CANCELLED if cancelled else names.RUN_FAILED,
            {
                "step": error.get("step"),
                "error": error.get("type"),
                "message": error.get("message"),
                **({"reason": "user"} if cancelled else {}),
            },
            dedup_key="run:cancelled" if cancelled else "run:failed",
        )
    return cancelled
