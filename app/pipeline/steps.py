"""The seven steps of a NAS run (the seed's pipeline), each with its undo where it has one.

`RunSteps` is bound to one run: its id and its spec (validated once, by the job) are typed
values here. The saga stores only the steps' JSON results: `execute_nas_run`'s
`SearchOutcome`, `process_results`' `RunSummary` (the run's result) and the payload of
`run.completed`.
"""

from __future__ import annotations

import asyncio
import functools
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.datasets.service import load_run_dataset
from app.db.models import RunStatus
from app.errors import CerebrosError, EngineDisabled
from app.events import names
from app.events.publish import RunEvents
from app.nas.artifacts import remove_artifacts
from app.nas.records import SearchResult, SearchStatus
from app.nas.spec import NasSpec
from app.pipeline.progress import CancelWatcher, DatabaseReporter
from app.runs import repository, trials
from app.saga import StepContext, StepInterrupted, StepRejected
from app.schemas.runs import Direction, RunError, RunSummary

P = ParamSpec("P")
ENGINE_LOCK = asyncio.Lock()
T = TypeVar("T")


class InvalidResult(CerebrosError):
    """The engine's result does not hold what a finished run must have."""


class RunCancelled(StepRejected):
    """The user asked to cancel the run while it was running (the saga fails and is undone)."""


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


class BestTrial(BaseModel):
    """The best trial as `execute_nas_run` keeps it (its history is in the trials table)."""

    model_config = ConfigDict(extra="ignore")

    number: int | None = None
    score: float | None = None
    architecture: dict[str, Any] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] | None = None


class SearchOutcome(BaseModel):
    """`execute_nas_run`'s durable result: the engine's `SearchResult` without its trials."""

    model_config = ConfigDict(extra="ignore")

    status: SearchStatus
    objective: str
    direction: Direction
    best: BestTrial | None = None
    trials_completed: int = 0
    trials_total: int | None = None
    total_epochs: int | None = None
    artifacts: dict[str, str] = Field(default_factory=dict)
    message: str = ""

    @classmethod
    def of(cls, result: SearchResult) -> SearchOutcome:
        best = result.best
        return cls(
            status=result.status,
            objective=result.objective,
            direction=result.direction,
            best=None
            if best is None
            else BestTrial(
                number=best.number,
                score=best.score,
                architecture=best.architecture,
                hyperparameters=best.hyperparameters,
            ),
            trials_completed=result.trials_completed,
            trials_total=len(result.trials),
            total_epochs=result.total_epochs,
            artifacts=dict(result.artifacts),
            message=result.message,
        )

    def summary(self) -> RunSummary:
        """The run's result: what a finished search must hold, checked once, here.

        Raises `RunCancelled` for a search the user stopped and `InvalidResult` for one
        without a completed trial or a best trial with a finite score and an architecture.
        """
        status = self.status
        if status == "cancelled":
            raise RunCancelled("the run was cancelled by the user")
        if self.trials_completed < 1:
            raise InvalidResult(f"no trial completed ({self.message or 'no message'})")
        best = self.best or BestTrial()
        if best.score is None or not math.isfinite(best.score):
            raise InvalidResult("the best trial has no finite score")
        if not best.architecture:
            raise InvalidResult("the best trial has no architecture")
        return RunSummary(
            status=status,
            objective=self.objective,
            direction=self.direction,
            best_score=best.score,
            best_trial=best.number,
            best_architecture=best.architecture,
            best_hyperparameters=best.hyperparameters,
            trials_completed=self.trials_completed,
            trials_total=self.trials_total,
            total_epochs=self.total_epochs,
            artifacts=self.artifacts,
            message=self.message,
        )


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
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.run_id = run_id
        self._spec = spec
        self.database_url = database_url
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
        from app.nas.engine import run_search  # Keras: imported where a search runs

        async with self.sessions() as session:
            done = await trials.finished_records(session, self.run_id)
        reporter = DatabaseReporter(self.sessions, self.run_id, asyncio.get_running_loop())
        watcher = CancelWatcher(self.sessions, self.run_id, self.database_url)

        def should_stop() -> bool:
            return watcher.should_stop() or reporter.error is not None

        watch_task = asyncio.create_task(watcher.watch())
        try:
            # Keras state is per process (clear_session): one search at a time per worker.
            async with ENGINE_LOCK, reporter:
                dataset = await load_run_dataset(  # an uploaded one, from Postgres; else None
                    self.sessions, self.spec, self.settings.resolved_dataset_cache_dir
                )
                result = await asyncio.to_thread(
                    run_search,
                    self.spec,
                    dataset=dataset,
                    artifacts_dir=self.artifacts_dir,
                    reporter=reporter,
                    should_stop=should_stop,
                    completed_trials=done,
                    data_cache_dir=self.settings.resolved_dataset_cache_dir,
                    max_trainable_params=self.settings.max_trainable_params,
                )
        finally:
            watch_task.cancel()
        if reporter.error is not None:
            raise reporter.error
        return SearchOutcome.of(result).model_dump(mode="json")

    async def remove_artifacts(self, ctx: StepContext, result: Any) -> None:
        """Undo of `execute_nas_run`."""
        await asyncio.to_thread(remove_artifacts, self.artifacts_dir)

    async def compensate_nas_run(self, ctx: StepContext, error: BaseException) -> None:
        await asyncio.to_thread(remove_artifacts, self.artifacts_dir)

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
