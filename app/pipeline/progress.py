"""Bridge from the training thread to the database: trial rows and trial events."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Coroutine
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events import names
from app.events.publish import publish_event
from app.nas.records import TrialRecord, TrialStart
from app.runs import repository, trials

log = logging.getLogger(__name__)

TRIAL_FINISHED_EVENTS = {
    "completed": names.TRIAL_COMPLETED,
    "pruned": names.TRIAL_PRUNED,
    "failed": names.TRIAL_FAILED,
}


class DatabaseReporter:
    """Persists the engine's progress; called from the search thread, runs on the loop.

    Each write and its event share one transaction. Events carry a dedup key per trial and
    epoch, so a trial trained again after a crash publishes nothing twice.
    """

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
        self.loop = loop
        self.durable_epochs = durable_epochs
        self.error: Exception | None = None

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        # Block the training thread until the write is committed: progress is durable
        # before training goes on, and back-pressure keeps the queue of writes bounded.
        # A failed write is kept, not raised: the engine would count it as a failed trial.
        # `should_stop` then stops the search, and the step raises the error so the job
        # retries and resumes from what was stored.
        if self.error is not None:
            coro.close()
            return
        try:
            asyncio.run_coroutine_threadsafe(coro, self.loop).result()
        except Exception as exc:
            log.warning("storing progress of run %s failed: %s", self.run_id, exc)
            self.error = exc

    def trial_started(self, trial: TrialStart) -> None:
        self._call(self._trial_started(trial))

    def epoch_finished(self, trial_number: int, epoch: int, metrics: dict[str, float]) -> None:
        self._call(self._epoch_finished(trial_number, epoch, metrics))

    def trial_finished(self, trial: TrialRecord) -> None:
        self._call(self._trial_finished(trial))

    async def _trial_started(self, trial: TrialStart) -> None:
        async with self.sessions.begin() as session:
            await trials.start_trial(
                session,
                self.run_id,
                trial.number,
                architecture=trial.architecture,
                hyperparameters=trial.hyperparameters,
                params_count=trial.params_count,
            )
            await publish_event(
                session,
                self.run_id,
                names.TRIAL_STARTED,
                {
                    "trial": trial.number,
                    "params_count": trial.params_count,
                    "hyperparameters": trial.hyperparameters,
                },
                dedup_key=f"trial:{trial.number}:started",
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
            await publish_event(
                session,
                self.run_id,
                names.TRIAL_EPOCH,
                {"trial": number, "epoch": epoch, "metrics": metrics},
                dedup_key=f"trial:{number}:epoch:{epoch}",
            )

    async def _trial_finished(self, trial: TrialRecord) -> None:
        record = trial.to_dict()
        async with self.sessions.begin() as session:
            await trials.finish_trial(session, self.run_id, record)
            await publish_event(
                session,
                self.run_id,
                TRIAL_FINISHED_EVENTS[trial.status],
                {
                    "trial": trial.number,
                    "status": trial.status,
                    "score": trial.score,
                    "best_epoch": trial.best_epoch,
                    "epochs_run": trial.epochs_run,
                    "error": trial.error,
                },
                dedup_key=f"trial:{trial.number}:finished",
            )


class CancelWatcher:
    """Polls the run's cancel flag so the training thread can check it without SQL."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        run_id: uuid.UUID,
        interval_s: float = 1.0,
    ) -> None:
        self.sessions = sessions
        self.run_id = run_id
        self.interval_s = interval_s
        self.requested = threading.Event()

    def should_stop(self) -> bool:
        return self.requested.is_set()

    async def watch(self) -> None:
        while not self.requested.is_set():
            try:
                async with self.sessions() as session:
                    run = await repository.get_run(session, self.run_id)
                if run is None or run.cancel_requested_at is not None:
                    self.requested.set()
                    return
            except Exception:
                # A database hiccup must not kill training; the next poll tries again.
                log.warning("cancel poll for run %s failed", self.run_id, exc_info=True)
            await asyncio.sleep(self.interval_s)
