"""The NAS run saga: the seed's seven steps on the durable saga engine."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Run, RunStatus
from app.events import names
from app.events.publish import publish_event
from app.pipeline.steps import RunSteps
from app.queue.worker_state import WorkerResources
from app.runs import repository
from app.saga import Input, Result, Saga, SagaFailed, SagaListener, SagaRunner, Step

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
                inputs={**run_id, "summary": Result("process_results")},
                after=["publish_complete_event"],
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
        await self._publish(names.STEP_UNDONE, payload, f"step:{step}:undone")


async def run_pipeline(resources: WorkerResources, run: Run) -> None:
    """Run (or resume) the run's saga and record how it ended.

    Raises `RunFailed` when the saga failed (the run is marked failed with the step and
    cause); infrastructure errors propagate so the job is retried and the saga resumes.
    """
    from app.pipeline.job import RunFailed

    steps = RunSteps(resources.settings, resources.sessions, run.id)
    runner = SagaRunner(
        resources.sessions,
        listener=RunSagaListener(resources.sessions, run.id, steps),
        fault_steps=resources.settings.fault_step_names,
    )
    try:
        await runner.run(
            build_run_saga(steps),
            saga_id=str(run.id),
            inputs={"run_id": str(run.id), "spec": run.spec},
        )
    except SagaFailed as failed:
        cancelled = await _record_failure(resources.sessions, run.id, failed)
        if not cancelled:
            raise RunFailed(str(failed)) from failed
        return
    # The status turns final only after the saga (and the events its steps publish) ended,
    # so a stream that sees the run final has every event already committed.
    async with resources.sessions.begin() as session:
        await repository.finish_run(session, run.id, RunStatus.SUCCEEDED)


async def _record_failure(
    sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID, failed: SagaFailed
) -> bool:
    """Mark the run failed (or cancelled, when the user asked); return True if cancelled."""
    async with sessions.begin() as session:
        run = await repository.get_run(session, run_id)
        cancelled = run is not None and run.cancel_requested_at is not None
        status = RunStatus.CANCELLED if cancelled else RunStatus.FAILED
        if await repository.finish_run(session, run_id, status, error=failed.to_dict()):
            await publish_event(
                session,
                run_id,
                names.RUN_FAILED if not cancelled else names.RUN_CANCELLED,
                {
                    "step": failed.step,
                    "error": failed.error_type,
                    "message": failed.message,
                    **({"reason": "user"} if cancelled else {}),
                },
                dedup_key="run:failed" if not cancelled else "run:cancelled",
            )
    return cancelled
