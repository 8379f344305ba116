"""A run's coordinating step: ask the strategy, queue what it says, finish when it is done.

`execute_nas_run` calls `Coordinator.run`. One advance is one transaction, with the run row
locked (as `cancel_run` and every trial's end lock it): read the trials table, plan
(`app.nas.planner`: the strategy's choices, numbers, the parameter cap, the failure
limit), record the skipped candidates, insert the new trials as ``queued`` with their
`cerebros.run_trial` jobs. Then:

* trials via the queue (workers): the step suspends (`StepSuspended`) and the job ends
  without holding a worker. Each trial's end plans and queues the next trials itself, in
  its own transaction (`plan_locked`), and defers the run's next advance (which resumes the
  saga here) only when it cannot: the search is over, cancelled or out of time, nothing
  is left queued or training, or planning failed. A crash anywhere is "ask again from the
  table".
* inline (`cerebros run --local`, in-process tests): this process trains the queued trials
  itself, with the same `execute_trial` a trial job runs, and asks again.

When the strategy is done and no trial is active, the run's artifacts are completed in
Postgres (history, result, preprocessing; the chosen model is already there, written by
the trial ends under the spec's selection rule, `app.runs.chosen_model`, whose leftover
candidates are dropped here) and the search's outcome is the step's result.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import procrastinate
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Run, Trial, TrialStatus
from app.events.publish import RunEvents
from app.nas.artifact_names import (
    ARCHITECTURE,
    BEST_MODEL,
    CHECKPOINTS,
    HISTORY,
    PREPROCESSING,
    RESULT,
    media_type_of,
)
from app.nas.artifacts import history_csv
from app.nas.datasets import Dataset
from app.nas.planner import plan, view_of
from app.nas.records import SearchStatus, TrialRecord
from app.nas.selection import Contender, decide
from app.nas.space import Architecture
from app.nas.spec import NasSpec
from app.nas.strategies import STRATEGIES, SearchSetup, Strategy, TrialView
from app.nas.trial import TrialRequest
from app.pipeline.outcome import BestTrial, SearchOutcome
from app.pipeline.trial_events import lost_record, trial_finished
from app.runs import artifacts, chosen_model, repository, trial_jobs, trials
from app.runtime import Runtime
from app.schemas.runs import RunSelection

__all__ = ["Advance", "Coordinator", "view_of_fields"]


def view_of_fields(
    number: int,
    status: TrialStatus,
    record: dict[str, Any] | None,
    request: dict[str, Any] | None,
    architecture: dict[str, Any] | None,
    epochs_target: int | None,
    epochs_run: int | None,
    parent: int | None,
) -> TrialView:
    """A trial as its strategy sees it, from the columns of `trials.PLANNER_FIELDS`.

    Its record's per-epoch history is not needed (that read leaves it out).
    """
    if record is not None:
        return view_of(TrialRecord.from_dict(record), status=str(status))
    request = request or {}
    arch = request.get("architecture") or architecture or {}
    return TrialView(
        number=number,
        status=str(status),  # type: ignore[arg-type]  # a TrialStatus value
        architecture=Architecture.from_dict(arch),
        epochs=int(request.get("epochs") or epochs_target or epochs_run or 0),
        initial_epoch=int(request.get("initial_epoch") or 0),
        parent=parent,
    )


@dataclass
class Advance:
    """What one advance did: the trials it queued, and the outcome once the search is over."""

    queued: list[int] = field(default_factory=list)
    active: list[int] = field(default_factory=list)
    outcome: SearchOutcome | None = None
    #: Planned without finishing (`Coordinator.plan_locked`): the search must end now
    #: (cancelled, timed out, done) or nothing is queued or training, so the run's own job
    #: has to take over.
    finish_due: bool = False


@dataclass
class Coordinator:
    runtime: Runtime
    run_id: uuid.UUID
    spec: NasSpec
    setup: SearchSetup
    data: Dataset
    via_queue: bool

    @property
    def queue(self) -> procrastinate.App:
        return self.runtime.queue

    def strategy(self) -> Strategy:
        return STRATEGIES[self.spec.parameters.strategy](self.setup)

    async def advance(self) -> Advance:
        """One transaction: plan and queue the next trials, or finish the search."""
        async with self.runtime.sessions.begin() as session:
            run = await repository.get_run_for_update(session, self.run_id)
            if run is None:
                raise RuntimeError(f"run {self.run_id} disappeared")
            return await self._advance_locked(session, run, finish=True)

    async def plan_locked(self, session: AsyncSession, run: Run) -> Advance:
        """Plan and queue the next trials in the caller's transaction, the run row locked.

        A trial's end calls this (queue mode), so the next trial is queued in the same
        commit instead of by an advance job picked up in between (one job pick-up and one
        commit less per trial). It never finishes the search: ``finish_due`` says when the
        run's own job must take over (then the caller defers it).
        """
        return await self._advance_locked(session, run, finish=False)

    async def _advance_locked(self, session: AsyncSession, run: Run, *, finish: bool) -> Advance:
        settings = self.runtime.settings
        events = RunEvents(self.runtime.sessions, self.run_id)
        if not finish and (run.cancel_requested_at is not None or self._timed_out(run)):
            return Advance(finish_due=True)
        if run.cancel_requested_at is not None:
            await trial_jobs.cancel_trial_jobs(session, self.run_id)
            rows = await trials.list_trials(session, self.run_id)
            return Advance(outcome=self._outcome("cancelled", rows, "cancelled by the user"))
        if self._timed_out(run):
            await trial_jobs.cancel_trial_jobs(session, self.run_id)
            await trials.cancel_unfinished(session, self.run_id)
            message = f"max_seconds={self.spec.budget.max_seconds} reached"
            rows = await trials.list_trials(session, self.run_id)
            return Advance(outcome=await self._finish(session, "timed_out", rows, message))
        if self.via_queue:
            await self._end_orphans(session, events)
        fields = await trials.planner_rows(session, self.run_id)
        views = [view_of_fields(**r._mapping) for r in fields]
        prior = await self._prior(session)
        step = plan(self.strategy(), prior + views, max_active=await self._max_active(session))
        for record in step.skipped:
            await trials.finish_trial(session, self.run_id, record)
            await trial_finished(events, session, record)
        out = Advance(active=[v.number for v in views if v.active])
        for planned in step.start:
            request = TrialRequest.of(planned.number, planned.request)
            arch = request.architecture
            await trials.queue_trial(
                session,
                self.run_id,
                planned.number,
                request.to_dict(),
                hyperparameters=arch.hyperparameters(),
                params_count=arch.params_count(),
            )
            if self.via_queue:
                job_id = await trial_jobs.defer_trial(
                    session,
                    self.queue,
                    self.run_id,
                    planned.number,
                    queue_name=settings.queue_name,
                )
                await trials.set_trial_job(session, self.run_id, planned.number, job_id)
            out.queued.append(planned.number)
        if not finish:
            # Done, or nothing that will end and plan again: the run's job takes over.
            out.finish_due = not out.active and not out.queued
            return out
        if step.done is not None and not out.active and not out.queued:
            status, message = step.done.status, step.done.reason
            rows = await trials.list_trials(session, self.run_id)
            out.outcome = await self._finish(session, status, rows, message)
        return out

    async def _end_orphans(self, session: AsyncSession, events: RunEvents) -> bool:
        """End as failed the trials whose job ended without ending them.

        (A bug, or a job cancelled by hand): otherwise the run would wait for them forever.
        """
        numbers = await trial_jobs.orphaned_trials(session, self.run_id)
        for number in numbers:
            row = await trials.get_trial(session, self.run_id, number)
            assert row is not None
            record = lost_record(
                number, row.request or {}, "its queue job ended without recording the trial"
            )
            if await trials.end_trial(session, self.run_id, record):
                await trial_finished(events, session, record)
        return bool(numbers)

    async def _prior(self, session: AsyncSession) -> list[TrialView]:
        """The finished trials of ``parameters.warm_start_run_id`` (checked at submission)."""
        warm = self.spec.parameters.warm_start_run_id
        if warm is None:
            return []
        rows = await trials.planner_rows(session, uuid.UUID(warm))
        return [
            replace(view_of_fields(**r._mapping), number=-r.number, parent=None, prior=True)
            for r in rows
            if r.status.is_finished
        ]

    async def _max_active(self, session: AsyncSession) -> int:
        """How many trials of this run may be queued or running at once.

        Inline: one. Via the queue: one per live worker (so two runs submitted together
        interleave on the workers instead of one queueing its whole budget first), lowered
        by ``budget.max_parallel_trials``.
        """
        if not self.via_queue:
            return 1
        workers = await trial_jobs.live_workers(
            session, seconds_since_heartbeat=self.runtime.settings.stalled_after_seconds
        )
        limit = max(1, workers)
        cap = self.spec.budget.max_parallel_trials
        return limit if cap is None else min(limit, cap)

    def _timed_out(self, run: Run) -> bool:
        limit = self.spec.budget.max_seconds
        if limit is None or run.started_at is None:
            return False
        return dt.datetime.now(dt.UTC) >= run.started_at + dt.timedelta(seconds=limit)

    def _outcome(self, status: SearchStatus, rows: list[Trial], message: str = "") -> SearchOutcome:
        records = [TrialRecord.from_dict(r.record) for r in rows if r.record is not None]
        found = (Contender.maybe(r.number, r.status, r.score, r.params_count) for r in records)
        choice = decide(
            [c for c in found if c is not None], self.spec.selection, self.spec.direction
        )
        best = None
        if choice is not None:
            best = next(r for r in records if r.number == choice.trial)
        return SearchOutcome(
            status=status,
            objective=self.spec.resolved_objective,
            direction=self.spec.direction,
            best=None
            if best is None
            else BestTrial(
                number=best.number,
                score=best.score,
                architecture=best.architecture,
                hyperparameters=best.hyperparameters,
            ),
            trials_completed=sum(1 for r in records if r.status == "completed"),
            trials_total=len(rows),
            total_epochs=sum(r.epochs_run for r in records),
            message=message,
            selection=None if choice is None else RunSelection.model_validate(choice.to_dict()),
        )

    async def _finish(
        self, session: AsyncSession, status: SearchStatus, rows: list[Trial], message: str
    ) -> SearchOutcome:
        """The search is over: complete its artifacts in Postgres and return its outcome."""
        outcome = self._outcome(status, rows, message)
        records = [TrialRecord.from_dict(r.record) for r in rows if r.record is not None]
        put = artifacts.put_artifact
        await put(session, self.run_id, HISTORY, history_csv(records).encode(), "text/csv")
        await put(
            session,
            self.run_id,
            PREPROCESSING,
            json.dumps(self.data.preprocessing().to_dict(), indent=2).encode(),
            media_type_of(PREPROCESSING),
        )
        await artifacts.delete_artifacts(session, self.run_id, prefix=CHECKPOINTS + "/")
        held = await chosen_model.finish(session, self.run_id, self.spec)
        stored = {a.name for a in await artifacts.list_artifacts(session, self.run_id)}
        if outcome.best is not None and held != outcome.best.number:
            outcome.message = (outcome.message + "; " if outcome.message else "") + (
                "the chosen trial's model was not stored"
            )
        names = {"best_model": BEST_MODEL, "architecture": ARCHITECTURE, "history": HISTORY}
        names |= {"preprocessing": PREPROCESSING, "result": RESULT}
        outcome.artifacts = {key: name for key, name in names.items() if name in stored}
        outcome.artifacts["result"] = RESULT
        await put(
            session,
            self.run_id,
            RESULT,
            json.dumps(outcome.model_dump(mode="json"), indent=2).encode(),
            media_type_of(RESULT),
        )
        return outcome
