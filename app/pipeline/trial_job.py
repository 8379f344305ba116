"""Train one trial of a run: what a `cerebros.run_trial` job does, on any worker of any host.

Two transactions per trial, one of them durable: the claim (the row becomes ``running`` on
this worker, its attempt counted, ``trial.started`` sent as a live notification; its commit
does not wait for the WAL flush) and the end (durable: the final record with its epoch
history, the terminal trial event, the trial's exported model when the run's selection rule
may choose it (`app.runs.chosen_model`), the checkpoint the strategy needs, and the run's
next trials or its advance), the end conditional on the trial still being unfinished so
each trial number ends exactly once. Epochs in between go out as live
notifications only (no row, no event id; `RunEvents.notify_live`): the history is durable
with the trial's end, and a trial cut short is trained again from its start anyway.

A trial whose worker died is put back by the stalled-job recovery; it is trained again at
most ``parameters.max_trial_retries`` times, then recorded failed. A finished trial is
never trained again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Run
from app.errors import CerebrosError, TransientError
from app.events import names
from app.events.publish import RunEvents
from app.nas.artifact_names import checkpoint_name, media_type_of
from app.nas.artifacts import best_model_bytes
from app.nas.backend import clear_backend_caches, freeze_heap
from app.nas.datasets import Dataset
from app.nas.engine import load_setup
from app.nas.records import TrialRecord, TrialStart
from app.nas.spec import NasSpec
from app.nas.trainer import Cancelled
from app.nas.trial import TrialRequest, TrialResult, train_trial
from app.observability.logs import set_trial
from app.observability.metrics import record_epoch_finished, record_trial_finished
from app.pipeline.coordinator import Coordinator
from app.pipeline.progress import CancelWatcher
from app.pipeline.run_data import run_dataset
from app.pipeline.trial_events import lost_record, trial_finished, trial_started
from app.runs import artifacts, chosen_model, repository, trial_jobs, trials
from app.runtime import Runtime

log = logging.getLogger(__name__)

__all__ = ["ENGINE_LOCK", "execute_trial", "execute_trial_job"]

#: Keras state is per process (clear_session): one training at a time per worker process.
ENGINE_LOCK = asyncio.Lock()
WORKER = f"{socket.gethostname()}:{os.getpid()}"


async def execute_trial_job(
    runtime: Runtime,
    run_id: uuid.UUID,
    number: int,
    *,
    final_attempt: bool = True,
    trials_via_queue: bool = True,
) -> None:
    """The `cerebros.run_trial` task's body.

    A retryable error (the database away) retries the job unless it is the last attempt;
    any other error, or the last attempt's, ends the trial failed with the error (and defers
    the run's advance) before the job fails: a trial never stays running after its job.
    """
    try:
        await execute_trial(runtime, run_id, number, via_queue=trials_via_queue)
    except Exception as exc:
        retryable = isinstance(exc, CerebrosError) and exc.retryable
        if retryable and not final_attempt:
            raise TransientError(f"trial {number} of run {run_id}: {exc}") from exc
        log.exception("trial %s of run %s failed outside its training", number, run_id)
        message = f"{type(exc).__name__}: {exc}"[:2000]
        await _fail(runtime, run_id, number, message, via_queue=trials_via_queue)
        raise


async def _fail(
    runtime: Runtime, run_id: uuid.UUID, number: int, error: str, *, via_queue: bool
) -> None:
    events = RunEvents(runtime.sessions, run_id)
    async with runtime.sessions.begin() as session:
        await repository.get_run_for_update(session, run_id)
        row = await trials.get_trial(session, run_id, number)
        if row is None:
            return
        record = lost_record(number, row.request or {}, error)
        await _record_end(session, runtime, run_id, record, events, via_queue)


class LiveEpochs:
    """Sends each epoch as a live notification, in order, off the training thread's path."""

    def __init__(self, events: RunEvents, loop: asyncio.AbstractEventLoop) -> None:
        self.events = events
        self.loop = loop
        self.queue: asyncio.Queue[Coroutine[Any, Any, None] | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveEpochs:
        self.task = asyncio.create_task(self._send_all())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.queue.put_nowait(None)
        assert self.task is not None
        await self.task

    async def _send_all(self) -> None:
        while (send := await self.queue.get()) is not None:
            try:
                await send
            except Exception as exc:  # live progress is best effort: the history is durable
                log.warning("live epoch notification failed: %s", exc)

    def epoch(self, number: int, epoch: int, metrics: dict[str, float]) -> None:
        """Called from the training thread: never waits for the database."""
        set_trial(number)
        payload = {"trial": number, "epoch": epoch, "metrics": metrics}
        coro = self.events.notify_live(names.TRIAL_EPOCH, payload)
        self.loop.call_soon_threadsafe(self.queue.put_nowait, coro)
        record_epoch_finished()


async def execute_trial(
    runtime: Runtime, run_id: uuid.UUID, number: int, *, via_queue: bool
) -> None:
    """Claim trial ``number`` of the run, train it, and record its end (see the module)."""
    events = RunEvents(runtime.sessions, run_id)
    claim = await _claim(runtime, run_id, number, events, via_queue=via_queue)
    if claim is None:
        return
    spec, request, parent_model, started_at = claim
    data = await run_dataset(runtime, run_id, spec)
    watcher = CancelWatcher(runtime.sessions, run_id, runtime.database_url)
    deadline = _deadline(spec, started_at)

    def should_stop() -> bool:
        return watcher.should_stop() or (deadline is not None and time.monotonic() >= deadline)

    def on_start(start: TrialStart) -> None:
        set_trial(start.number)

    loop = asyncio.get_running_loop()
    watch = asyncio.create_task(watcher.watch())
    cancelled = False
    result: TrialResult | None = None
    try:
        async with ENGINE_LOCK, LiveEpochs(events, loop) as live:
            # Once per process, before its first model is built (no model is alive yet, and
            # the lock keeps any other trial of this process from training): without it
            # every trial's `clear_backend_caches` rescans the ~380 000 import-time objects
            # (~0.4 s a trial; docs/benchmarks.md, "Distributed search").
            await asyncio.to_thread(freeze_heap)
            try:
                result = await asyncio.to_thread(
                    train_trial,
                    spec,
                    data,
                    request,
                    parent_model=parent_model,
                    on_start=on_start,
                    on_epoch=functools.partial(live.epoch, number),
                    should_stop=should_stop,
                )
            except Cancelled:
                cancelled = True
    finally:
        watch.cancel()
        set_trial(None)
    if cancelled or result is None:
        clear_backend_caches()
        await _end_cancelled(runtime, run_id, number, via_queue=via_queue)
        return
    record = result.record
    best_bytes = None
    if record.status == "completed" and await _may_keep(runtime, run_id, spec, record):
        best_bytes = await asyncio.to_thread(best_model_bytes, result.model, data.preprocessing())
    checkpoint = result.checkpoint
    del result
    clear_backend_caches()  # the model is gone: free what the backend kept of it
    await _end(
        runtime,
        run_id,
        record,
        events,
        spec=spec,
        data=data,
        best_model=best_bytes,
        checkpoint=checkpoint,
        via_queue=via_queue,
    )


async def _claim(
    runtime: Runtime,
    run_id: uuid.UUID,
    number: int,
    events: RunEvents,
    *,
    via_queue: bool,
) -> tuple[NasSpec, TrialRequest, bytes | None, dt.datetime | None] | None:
    """Take the trial for this worker; None when there is nothing (more) to train."""
    async with runtime.sessions.begin() as session:
        run = await repository.get_run(session, run_id)
        row = await trials.get_trial_for_update(session, run_id, number)
        if run is None or row is None or row.status.is_final:
            return None  # gone, or ended already: a finished trial is never trained again
        if run.status.is_final or run.cancel_requested_at is not None:
            await trials.cancel_trial(session, run_id, number)
            await _advance(session, runtime, run_id, via_queue)
            return None
        try:
            spec = NasSpec.model_validate(run.spec)
            request = TrialRequest.from_dict(number, row.request or {})
        except (ValidationError, KeyError, ValueError, TypeError) as exc:
            record = lost_record(number, row.request or {}, f"invalid trial: {exc}")
            await _record_end(session, runtime, run_id, record, events, via_queue)
            return None
        retries = spec.parameters.max_trial_retries
        if row.attempts > retries:
            error = (
                f"the worker training it stopped {row.attempts} times "
                f"(last: {row.worker}); max_trial_retries={retries}"
            )
            record = lost_record(number, row.request or {}, error)
            await _record_end(session, runtime, run_id, record, events, via_queue)
            return None
        if row.attempts:
            log.warning(
                "trial %s of run %s: training it again (worker %s stopped)",
                number,
                run_id,
                row.worker,
            )
        # The claim holds nothing a client or a retry depends on surviving a Postgres crash:
        # lost, the trial is still queued with its job `doing`, which the stalled-job
        # recovery retries, and `trial.started` is live-only. So its commit does not wait
        # for the WAL flush: a trial's one durable commit is its end (issue 15).
        await session.execute(text("SET LOCAL synchronous_commit TO off"))
        await trials.claim_trial(session, run_id, number, worker=WORKER)
        parent_model = None
        if request.parent is not None:
            stored = await artifacts.get_artifact(session, run_id, checkpoint_name(request.parent))
            parent_model = None if stored is None else stored.content
        arch = request.architecture
        await trial_started(
            events,
            session,
            TrialStart(
                number=number,
                architecture=arch.to_dict(),
                hyperparameters=arch.hyperparameters(),
                params_count=arch.params_count(),
            ),
        )
        return spec, request, parent_model, run.started_at


def _deadline(spec: NasSpec, started_at: dt.datetime | None) -> float | None:
    """``budget.max_seconds`` as a `time.monotonic` deadline (from the run's start)."""
    limit = spec.budget.max_seconds
    if limit is None or started_at is None:
        return None
    elapsed = (dt.datetime.now(dt.UTC) - started_at).total_seconds()
    return time.monotonic() + (limit - elapsed)


async def _may_keep(
    runtime: Runtime, run_id: uuid.UUID, spec: NasSpec, record: TrialRecord
) -> bool:
    """Whether the selection rule may choose this trial: only then is its model exported."""
    async with runtime.sessions() as session:
        pool = await trials.contenders(session, run_id)
    return chosen_model.may_keep(spec, pool, record)


async def _end(
    runtime: Runtime,
    run_id: uuid.UUID,
    record: TrialRecord,
    events: RunEvents,
    *,
    spec: NasSpec,
    data: Dataset,
    best_model: bytes | None,
    checkpoint: bytes | None,
    via_queue: bool,
) -> None:
    """The trial's end: one transaction, the run row locked (best-model writes serialize).

    Via the queue it also queues the run's next trials (`_queue_next`).
    """
    async with runtime.sessions.begin() as session:
        run = await repository.get_run_for_update(session, run_id)
        if run is None:
            return
        if run.status.is_final or run.cancel_requested_at is not None:
            await trials.cancel_trial(session, run_id, record.number)
            await _advance(session, runtime, run_id, via_queue)
            return
        if checkpoint is not None:
            await artifacts.put_artifact(
                session,
                run_id,
                checkpoint_name(record.number),
                checkpoint,
                media_type_of(checkpoint_name(record.number)),
            )
        ended = await _record_end(
            session, runtime, run_id, record, events, via_queue, advance=False
        )
        if ended and best_model is not None:  # recorded completed: the rule may keep it
            await chosen_model.offer(session, run_id, spec, record, best_model)
        if not (ended and via_queue and await _queue_next(session, runtime, run, spec, data)):
            await _advance(session, runtime, run_id, via_queue)
    record_trial_finished(record.status, record.duration_s, skipped=record.skipped)


async def _queue_next(
    session: AsyncSession, runtime: Runtime, run: Run, spec: NasSpec, data: Dataset
) -> bool:
    """Queue the run's next trials in this trial's end; False: defer the run's advance.

    Saves a job pick-up and a commit per trial (docs/benchmarks.md, "Distributed search").
    Planning runs in a savepoint: if it fails, the trial's end still commits and the
    advance job plans again (and fails the run through its saga if it fails again).
    """
    try:
        async with session.begin_nested():
            setup = load_setup(spec, data, runtime.settings.max_trainable_params)
            coordinator = Coordinator(runtime, run.id, spec, setup, data, via_queue=True)
            step = await coordinator.plan_locked(session, run)
    except Exception:
        log.exception("run %s: planning the next trials in a trial's end failed", run.id)
        return False
    return not step.finish_due


async def _record_end(
    session: AsyncSession,
    runtime: Runtime,
    run_id: uuid.UUID,
    record: TrialRecord,
    events: RunEvents,
    via_queue: bool,
    *,
    advance: bool = True,
) -> bool:
    """End the trial with ``record``; False if it had ended.

    With ``advance``, also defer the run's advance.
    """
    ended = await trials.end_trial(session, run_id, record)
    if ended:
        await trial_finished(events, session, record)
    if advance:
        await _advance(session, runtime, run_id, via_queue)
    return ended


async def _end_cancelled(
    runtime: Runtime, run_id: uuid.UUID, number: int, *, via_queue: bool
) -> None:
    """A trial stopped by the run's cancel or time limit: it ends cancelled, untrained."""
    async with runtime.sessions.begin() as session:
        await repository.get_run_for_update(session, run_id)
        await trials.cancel_trial(session, run_id, number)
        await _advance(session, runtime, run_id, via_queue)


async def _advance(
    session: AsyncSession, runtime: Runtime, run_id: uuid.UUID, via_queue: bool
) -> None:
    """Defer the run's next advance (queue mode), in the trial's transaction."""
    if via_queue:
        await trial_jobs.defer_advance(
            session, runtime.queue, run_id, queue_name=runtime.settings.queue_name
        )
