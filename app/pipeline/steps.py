"""The seven steps of a NAS run (the seed's pipeline), each with its undo where it has one.

`RunSteps` is bound to one run: its id and its spec (validated once, by the job) are typed
values here. The saga stores only the steps' JSON results: `execute_nas_run`'s
`SearchOutcome`, `process_results`' `RunSummary` (the run's result) and the payload of
`run.completed`.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db.models import RunStatus
from app.errors import CerebrosError, EngineDisabled
from app.events import names
from app.events.publish import RunEvents
from app.nas.artifacts import remove_artifacts
from app.nas.spec import NasSpec
from app.pipeline.outcome import InvalidResult, RunCancelled, SearchOutcome
from app.pipeline.run_data import run_dataset
from app.runs import repository
from app.runs.artifacts import delete_artifacts
from app.runtime import Runtime
from app.saga import StepContext, StepInterrupted, StepRejected, StepSuspended
from app.schemas.runs import RunError, RunSummary

P = ParamSpec("P")
T = TypeVar("T")


def interrupt_on_transient(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """A database outage inside a step interrupts the saga instead of failing it.

    The job retries and resumes, instead of undoing work that is still valid.
    """

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except StepInterrupted:
            raise
        except Exception as exc:
            if isinstance(exc, CerebrosError) and exc.retryable:
                raise StepInterrupted(f"transient error: {exc}") from exc
            raise

    return wrapper


def undo_reason(failure: Mapping[str, Any] | None) -> str:
    """Why a started run is undone (`run.cancelled`'s reason): the saga's stored failure."""
    if failure is None:
        return "a later step failed"
    error = RunError.model_validate(dict(failure))
    cause = f"{error.type}: {error.message}"
    return f"{error.step} failed: {cause}" if error.step else cause


class RunSteps:
    """Step functions bound to one run (the saga definition refers to these).

    `spec` is the run's validated spec; only the steps that run need it, so a `RunSteps`
    built to undo a run whose stored spec is invalid has none.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        run_id: uuid.UUID,
        *,
        spec: NasSpec | None = None,
        database_url: str | None = None,
        runtime: Runtime | None = None,
        trials_via_queue: bool = False,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.run_id = run_id
        self._spec = spec
        self.database_url = database_url
        self.runtime = runtime
        self.trials_via_queue = trials_via_queue
        self.events = RunEvents(sessions, run_id)

    @property
    def spec(self) -> NasSpec:
        if self._spec is None:
            raise RuntimeError(f"run {self.run_id}: these steps were built without its spec")
        return self._spec

    @property
    def artifacts_dir(self) -> Path:
        return self.settings.resolved_artifacts_dir / str(self.run_id)

    async def check_enabled(self, ctx: StepContext) -> bool:
        if not self.settings.engine_enabled:
            raise EngineDisabled(
                "the NAS engine is disabled by configuration (CEREBROS_ENGINE_ENABLED=false)"
            )
        return True

    async def ensure_run_id(self, ctx: StepContext, run_id: str | None) -> str:
        """The saga's one look at its JSON run id: it must be the run these steps are for."""
        if run_id is not None and uuid.UUID(run_id) != self.run_id:
            raise ValueError(f"saga input run_id {run_id} is not run {self.run_id}")
        return str(self.run_id)

    @interrupt_on_transient
    async def publish_start_event(self, ctx: StepContext) -> int:
        payload = {"dataset_id": self.spec.dataset_id, "objective": self.spec.objective}
        await self.events.publish(names.RUN_STARTED, payload, dedup="run:started")
        return 1

    async def publish_cancelled_event(self, ctx: StepContext, result: Any) -> None:
        """Undo of `publish_start_event`: the run that started is cancelled."""
        await self._publish_cancelled(undo_reason(ctx.failure))

    async def compensate_start_event(self, ctx: StepContext, error: BaseException) -> None:
        """`publish_start_event` failed, perhaps after its commit: withdraw what it published."""
        if await self.events.is_published("run:started"):
            await self._publish_cancelled(f"{ctx.step} failed: {type(error).__name__}: {error}")

    async def _publish_cancelled(self, reason: str) -> None:
        async with self.sessions() as session:
            run = await repository.get_run(session, self.run_id)
        if run is not None and run.cancel_requested_at is not None:
            reason = "user"
        await self.events.publish(names.RUN_CANCELLED, {"reason": reason}, dedup="run:cancelled")

    @interrupt_on_transient
    async def execute_nas_run(self, ctx: StepContext) -> dict[str, Any]:
        """Coordinate the search (`app.pipeline.coordinator`); its outcome is the result.

        With trials via the queue the step suspends while trials train elsewhere and reruns
        when one ends; inline, this process trains them and the step returns when done.
        """
        # Keras: imported where a search runs, never by the API.
        from app.nas.engine import load_setup
        from app.pipeline.coordinator import Coordinator
        from app.pipeline.trial_job import execute_trial

        if self.runtime is None:
            raise RuntimeError(f"run {self.run_id}: these steps were built without a runtime")
        data = await run_dataset(self.runtime, self.run_id, self.spec)
        setup = load_setup(self.spec, data, self.settings.max_trainable_params)
        coordinator = Coordinator(
            self.runtime, self.run_id, self.spec, setup, data, via_queue=self.trials_via_queue
        )
        while True:
            step = await coordinator.advance()
            if step.outcome is not None:
                return step.outcome.model_dump(mode="json")
            if self.trials_via_queue:
                raise StepSuspended(f"waiting for trials {sorted(step.active + step.queued)}")
            # Inline: train here what is queued (and what a crashed attempt left running).
            for number in sorted(step.active + step.queued):
                await execute_trial(self.runtime, self.run_id, number, via_queue=False)

    async def remove_artifacts(self, ctx: StepContext, result: Any) -> None:
        """Undo of `execute_nas_run`: its artifacts, in Postgres and any old folder on disk."""
        async with self.sessions.begin() as session:
            await delete_artifacts(session, self.run_id)
        await asyncio.to_thread(remove_artifacts, self.artifacts_dir)

    async def compensate_nas_run(self, ctx: StepContext, error: BaseException) -> None:
        await self.remove_artifacts(ctx, None)

    async def process_results(self, ctx: StepContext, result: dict[str, Any]) -> dict[str, Any]:
        try:
            outcome = SearchOutcome.model_validate(result)
        except ValidationError as exc:
            raise InvalidResult(f"unexpected search result: {exc}") from exc
        return outcome.summary().model_dump(mode="json")

    async def publish_complete_event(
        self, ctx: StepContext, summary: dict[str, Any]
    ) -> dict[str, Any]:
        """Stage `run.completed` (its payload is this step's durable result).

        An event cannot be taken back, so it becomes visible only in `store_result`'s
        transaction, the one that makes the run succeeded: a run that fails or is cancelled
        after this step never shows a `completed` it contradicts.
        """
        result = RunSummary.model_validate(summary)
        return {
            "best_score": result.best_score,
            "objective": result.objective,
            "trials_completed": result.trials_completed,
            "best_trial": result.best_trial,
        }

    @interrupt_on_transient
    async def store_result(
        self, ctx: StepContext, summary: dict[str, Any], completed_event: dict[str, Any]
    ) -> bool:
        """The saga's pivot: result, `succeeded` and `run.completed` in one transaction.

        The run row is locked first, as `cancel_run` locks it, so a cancel accepted before
        this commit wins (the step is rejected and the saga undone) and one after it finds
        the run final. Idempotent: rerun after its commit, it finds the run succeeded.
        """
        result = RunSummary.model_validate(summary)
        async with self.sessions.begin() as session:
            run = await repository.get_run_for_update(session, self.run_id)
            if run is not None and run.status == RunStatus.SUCCEEDED:
                return True
            if run is None or run.cancel_requested_at is not None:
                raise RunCancelled("the run was cancelled by the user")
            if run.status != RunStatus.RUNNING:
                raise StepRejected(f"the run is {run.status}, not running")
            await repository.store_result(session, self.run_id, result)
            # This step's own `succeeded` event goes out before the terminal event (the
            # listener's later publication of it is deduplicated): `completed` comes last.
            await self.events.publish(
                names.STEP_SUCCEEDED,
                {"step": ctx.step},
                dedup=f"step:{ctx.step}:succeeded",
                session=session,
            )
            await repository.finish_run(session, self.run_id, RunStatus.SUCCEEDED)
            await self.events.publish(
                names.RUN_COMPLETED, completed_event, dedup="run:completed", session=session
            )
        return True
