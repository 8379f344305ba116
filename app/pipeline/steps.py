"""The seven steps of a NAS run (the seed's pipeline), each with its undo where it has one."""

from __future__ import annotations

import asyncio
import functools
import math
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.datasets.service import load_run_dataset
from app.db.models import RunStatus
from app.errors import CerebrosError, EngineDisabled
from app.events import names
from app.events.publish import is_published, publish_event
from app.nas.artifacts import remove_artifacts
from app.nas.spec import NasSpec
from app.pipeline.progress import CancelWatcher, DatabaseReporter
from app.queue.retry import is_transient
from app.runs import repository, trials
from app.saga import StepContext, StepInterrupted, StepRejected

P = ParamSpec("P")
ENGINE_LOCK = asyncio.Lock()
T = TypeVar("T")


class InvalidResult(CerebrosError):
    """The engine's result does not hold what a finished run must have."""


class RunCancelled(StepRejected):
    """The user asked to cancel the run while it was running (the saga fails and is undone)."""


def interrupt_on_transient(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """A database outage inside a step interrupts the saga (the job retries and resumes)
    instead of failing it and undoing work that is still valid."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except StepInterrupted:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise StepInterrupted(f"transient error: {exc}") from exc
            raise

    return wrapper


class RunSteps:
    """Step functions bound to one run's resources (the saga definition refers to these)."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        run_id: uuid.UUID,
        database_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.run_id = run_id
        self.database_url = database_url
        self.failure_reason: str | None = None

    def artifacts_dir(self, run_id: str) -> Path:
        return self.settings.resolved_artifacts_dir / run_id

    async def check_enabled(self, ctx: StepContext) -> bool:
        if not self.settings.engine_enabled:
            raise EngineDisabled(
                "the NAS engine is disabled by configuration (CEREBROS_ENGINE_ENABLED=false)"
            )
        return True

    async def ensure_run_id(self, ctx: StepContext, run_id: str | None) -> str:
        return str(uuid.UUID(run_id)) if run_id else str(uuid.uuid4())

    @interrupt_on_transient
    async def publish_start_event(self, ctx: StepContext, run_id: str, spec: dict[str, Any]) -> int:
        async with self.sessions.begin() as session:
            await publish_event(
                session,
                uuid.UUID(run_id),
                names.RUN_STARTED,
                {"dataset_id": spec.get("dataset_id"), "objective": spec.get("objective")},
                dedup_key="run:started",
            )
        return 1

    async def publish_cancelled_event(
        self, ctx: StepContext, result: Any, run_id: str, spec: dict[str, Any]
    ) -> None:
        """Undo of `publish_start_event`: the run that started is cancelled."""
        await self._publish_cancelled(uuid.UUID(run_id))

    async def compensate_start_event(
        self, ctx: StepContext, error: BaseException, run_id: str, spec: dict[str, Any]
    ) -> None:
        """`publish_start_event` failed, perhaps after its commit: withdraw what it published."""
        async with self.sessions() as session:
            started = await is_published(session, uuid.UUID(run_id), "run:started")
        if started:
            await self._publish_cancelled(uuid.UUID(run_id))

    async def _publish_cancelled(self, run_id: uuid.UUID) -> None:
        async with self.sessions() as session:
            run = await repository.get_run(session, run_id)
        user = run is not None and run.cancel_requested_at is not None
        reason = "user" if user else (self.failure_reason or "a later step failed")
        async with self.sessions.begin() as session:
            await publish_event(
                session, run_id, names.RUN_CANCELLED, {"reason": reason}, dedup_key="run:cancelled"
            )

    @interrupt_on_transient
    async def execute_nas_run(
        self, ctx: StepContext, run_id: str, spec: dict[str, Any]
    ) -> dict[str, Any]:
        from app.nas.engine import run_search
        from app.nas.records import TrialRecord

        nas_spec = NasSpec.model_validate(spec)
        run_uuid = uuid.UUID(run_id)
        async with self.sessions() as session:
            done = [
                TrialRecord.from_dict(r) for r in await trials.finished_records(session, run_uuid)
            ]
        reporter = DatabaseReporter(self.sessions, run_uuid, asyncio.get_running_loop())
        watcher = CancelWatcher(self.sessions, run_uuid, self.database_url)

        def should_stop() -> bool:
            return watcher.should_stop() or reporter.error is not None

        watch_task = asyncio.create_task(watcher.watch())
        try:
            # Keras state is per process (clear_session): one search at a time per worker.
            async with ENGINE_LOCK, reporter:
                dataset = await load_run_dataset(  # an uploaded one, from Postgres; else None
                    self.sessions, nas_spec, self.settings.resolved_dataset_cache_dir
                )
                result = await asyncio.to_thread(
                    run_search,
                    nas_spec,
                    dataset=dataset,
                    artifacts_dir=self.artifacts_dir(run_id),
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
        summary = result.to_dict()
        # Trials (with their per-epoch history) live in the trials table; keep this small.
        summary.pop("trials", None)
        if summary.get("best"):
            summary["best"].pop("history", None)
        summary["trials_total"] = len(result.trials)
        return summary

    async def remove_artifacts(self, ctx: StepContext, *args: Any, run_id: str, **_: Any) -> None:
        await asyncio.to_thread(remove_artifacts, self.artifacts_dir(run_id))

    async def compensate_nas_run(
        self, ctx: StepContext, error: BaseException, run_id: str, spec: dict[str, Any]
    ) -> None:
        await self.remove_artifacts(ctx, run_id=run_id)

    async def process_results(self, ctx: StepContext, result: dict[str, Any]) -> dict[str, Any]:
        if result.get("status") == "cancelled":
            raise RunCancelled("the run was cancelled by the user")
        if result.get("status") not in {"completed", "exhausted", "timed_out"}:
            raise InvalidResult(f"unexpected search status {result.get('status')!r}")
        if int(result.get("trials_completed") or 0) < 1:
            raise InvalidResult(f"no trial completed ({result.get('message') or 'no message'})")
        best = result.get("best") or {}
        score = best.get("score")
        if not isinstance(score, int | float) or not math.isfinite(score):
            raise InvalidResult("the best trial has no finite score")
        if not isinstance(best.get("architecture"), dict) or not best["architecture"]:
            raise InvalidResult("the best trial has no architecture")
        return {
            "status": result["status"],
            "objective": result["objective"],
            "direction": result["direction"],
            "best_score": score,
            "best_trial": best.get("number"),
            "best_architecture": best["architecture"],
            "best_hyperparameters": best.get("hyperparameters"),
            "trials_completed": result["trials_completed"],
            "trials_total": result.get("trials_total"),
            "total_epochs": result.get("total_epochs"),
            "artifacts": result.get("artifacts", {}),
            "message": result.get("message", ""),
        }

    async def publish_complete_event(
        self, ctx: StepContext, run_id: str, summary: dict[str, Any]
    ) -> dict[str, Any]:
        """Stage `run.completed` (its payload is this step's durable result).

        An event cannot be taken back, so it becomes visible only in `store_result`'s
        transaction, the one that makes the run succeeded: a run that fails or is cancelled
        after this step never shows a `completed` it contradicts.
        """
        return {
            "best_score": summary["best_score"],
            "objective": summary["objective"],
            "trials_completed": summary["trials_completed"],
            "best_trial": summary["best_trial"],
        }

    @interrupt_on_transient
    async def store_result(
        self,
        ctx: StepContext,
        run_id: str,
        summary: dict[str, Any],
        completed_event: dict[str, Any],
    ) -> bool:
        """The saga's pivot: result, `succeeded` and `run.completed` in one transaction.

        The run row is locked first, as `cancel_run` locks it, so a cancel accepted before
        this commit wins (the step is rejected and the saga undone) and one after it finds
        the run final. Idempotent: rerun after its commit, it finds the run succeeded.
        """
        run_uuid = uuid.UUID(run_id)
        async with self.sessions.begin() as session:
            run = await repository.get_run_for_update(session, run_uuid)
            if run is not None and run.status == RunStatus.SUCCEEDED:
                return True
            if run is None or run.cancel_requested_at is not None:
                raise RunCancelled("the run was cancelled by the user")
            if run.status != RunStatus.RUNNING:
                raise StepRejected(f"the run is {run.status}, not running")
            await repository.store_result(session, run_uuid, summary)
            # This step's own `succeeded` event goes out before the terminal event (the
            # listener's later publication of it is deduplicated): `completed` comes last.
            await publish_event(
                session,
                run_uuid,
                names.STEP_SUCCEEDED,
                {"step": ctx.step},
                dedup_key=f"step:{ctx.step}:succeeded",
            )
            await repository.finish_run(session, run_uuid, RunStatus.SUCCEEDED)
            await publish_event(
                session, run_uuid, names.RUN_COMPLETED, completed_event, dedup_key="run:completed"
            )
        return True
