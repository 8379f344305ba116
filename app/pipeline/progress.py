"""Bridge from the training thread to the database: trial rows and trial events."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Coroutine
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import TrialStatus
from app.db.urls import libpq_url
from app.events import names
from app.events.publish import RunEvents
from app.nas.records import TrialRecord, TrialStart
from app.observability.logs import set_trial
from app.observability.metrics import record_epoch_finished, record_trial_finished
from app.runs import repository, trials
from app.runs.cancel import CANCEL_CHANNEL

log = logging.getLogger(__name__)

TRIAL_FINISHED_EVENTS = {
    TrialStatus.COMPLETED: names.TRIAL_COMPLETED,
    TrialStatus.PRUNED: names.TRIAL_PRUNED,
    TrialStatus.FAILED: names.TRIAL_FAILED,
}


class DatabaseReporter:
    """Persists the engine's progress; called from the search thread, written on the loop.

    Each write and its event share one transaction. Writes are queued and applied one after
    another by a single task, so event ids follow the order of the progress they report and
    training does not wait for each commit's disk flush (it waits only when the queue is
    full). Use it as an async context manager around the search: leaving it applies every
    queued write. Events carry a dedup key per trial and epoch, so a trial trained again
    after a crash publishes nothing twice.
    """

    QUEUE_SIZE = 64

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        run_id: uuid.UUID,
        loop: asyncio.AbstractEventLoop,
        *,
        durable_epochs: bool = True,
    ) -> None:
        self.sessions = sessions
        self.run_id = run_id
        self.events = RunEvents(sessions, run_id)
        self.loop = loop
        self.durable_epochs = durable_epochs
        self.error: Exception | None = None
        self._queue: asyncio.Queue[Coroutine[Any, Any, None] | None] = asyncio.Queue(
            self.QUEUE_SIZE
        )
        self._writer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> DatabaseReporter:
        self._writer = asyncio.create_task(self._write_all())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._queue.put(None)
        assert self._writer is not None
        await self._writer

    async def _write_all(self) -> None:
        while (write := await self._queue.get()) is not None:
            try:
                if self.error is None:
                    await write
                else:
                    write.close()
            except Exception as exc:
                # Kept, not raised into the engine (it would count as a failed trial):
                # `should_stop` stops the search and the step raises it, so the job retries
                # and resumes from what was stored.
                log.warning("storing progress of run %s failed: %s", self.run_id, exc)
                self.error = exc
            finally:
                self._queue.task_done()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        """Queue a write (from the search thread); blocks only while the queue is full."""
        if self.error is not None:
            coro.close()
            return
        asyncio.run_coroutine_threadsafe(self._queue.put(coro), self.loop).result()

    def flush(self) -> None:
        """Block the calling thread until every queued write is applied."""
        asyncio.run_coroutine_threadsafe(self._queue.join(), self.loop).result()

    def trial_started(self, trial: TrialStart) -> None:
        set_trial(trial.number)  # the search thread's log lines name the trial it trains
        self._call(self._trial_started(trial))

    def epoch_finished(self, trial_number: int, epoch: int, metrics: dict[str, float]) -> None:
        set_trial(trial_number)  # a successive-halving rung resumes a trial without a start
        self._call(self._epoch_finished(trial_number, epoch, metrics))

    def trial_finished(self, trial: TrialRecord) -> None:
        set_trial(None)
        self._call(self._trial_finished(trial))

    async def _trial_started(self, trial: TrialStart) -> None:
        async with self.sessions.begin() as session:
            await trials.start_trial(session, self.run_id, trial)
            await self.events.publish(
                names.TRIAL_STARTED,
                {
                    "trial": trial.number,
                    "params_count": trial.params_count,
                    "hyperparameters": trial.hyperparameters,
                },
                dedup=f"trial:{trial.number}:started",
                session=session,
            )

    async def _epoch_finished(self, number: int, epoch: int, metrics: dict[str, float]) -> None:
        async with self.sessions.begin() as session:
            # Epoch commits are durable by default: a stream client may already hold an
            # epoch event's id, and "nothing committed is lost" must hold for it too.
            # durable_epochs=False skips the WAL flush (~4 ms per epoch, see
            # docs/benchmarks.md); a database crash could then drop epochs of an unfinished
            # trial (resume retrains that trial anyway).
            if not self.durable_epochs:
                await session.execute(text("SET LOCAL synchronous_commit TO off"))
            await trials.record_epoch(session, self.run_id, number, {"epoch": epoch, **metrics})
            await self.events.publish(
                names.TRIAL_EPOCH,
                {"trial": number, "epoch": epoch, "metrics": metrics},
                dedup=f"trial:{number}:epoch:{epoch}",
                session=session,
            )
        record_epoch_finished()  # once committed

    async def _trial_finished(self, trial: TrialRecord) -> None:
        async with self.sessions.begin() as session:
            await trials.finish_trial(session, self.run_id, trial)
            await self.events.publish(
                TRIAL_FINISHED_EVENTS[TrialStatus(trial.status)],
                {
                    "trial": trial.number,
                    "status": trial.status,
                    "score": trial.score,
                    "best_epoch": trial.best_epoch,
                    "epochs_run": trial.epochs_run,
                    "error": trial.error,
                },
                dedup=f"trial:{trial.number}:finished",
                session=session,
            )
        record_trial_finished(trial.status, trial.duration_s, skipped=trial.skipped)


class CancelWatcher:
    """Tells the training thread, without SQL on its side, that the run was cancelled.

    `cancel_run` NOTIFYs `CANCEL_CHANNEL` when it commits, so the flag is set within
    milliseconds (an epoch of a small network takes less than the old 1 s poll). The row is
    read once after LISTEN (a cancel committed just before) and then every `interval_s`
    (a notification lost with a dropped connection); without `database_url`, it only polls.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        run_id: uuid.UUID,
        database_url: str | None = None,
        interval_s: float = 5.0,
    ) -> None:
        self.sessions = sessions
        self.run_id = run_id
        self.database_url = database_url
        self.interval_s = interval_s if database_url else min(interval_s, 1.0)
        self.requested = threading.Event()

    def should_stop(self) -> bool:
        return self.requested.is_set()

    async def watch(self) -> None:
        while not self.requested.is_set():
            try:
                if self.database_url:
                    await self._listen()
                else:
                    await self._poll()
            except Exception:
                # A database hiccup must not kill training; try again shortly.
                log.warning("cancel watch for run %s failed", self.run_id, exc_info=True)
                await asyncio.sleep(min(self.interval_s, 1.0))

    async def _poll(self) -> None:
        while not await self._cancelled():
            await asyncio.sleep(self.interval_s)
        self.requested.set()

    async def _listen(self) -> None:
        assert self.database_url is not None
        async with await psycopg.AsyncConnection.connect(
            libpq_url(self.database_url), autocommit=True
        ) as conn:
            await conn.execute(f"LISTEN {CANCEL_CHANNEL}")
            while not await self._cancelled():
                async for notify in conn.notifies(timeout=self.interval_s):
                    if notify.payload == str(self.run_id):
                        break
            self.requested.set()

    async def _cancelled(self) -> bool:
        async with self.sessions() as session:
            run = await repository.get_run(session, self.run_id)
        return run is None or run.cancel_requested_at is not None
