"""The trial events a run publishes (one place for their payloads)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import TrialStatus
from app.events import names
from app.events.publish import RunEvents
from app.nas.records import TrialRecord, TrialStart

TRIAL_FINISHED_EVENTS = {
    TrialStatus.COMPLETED: names.TRIAL_COMPLETED,
    TrialStatus.PRUNED: names.TRIAL_PRUNED,
    TrialStatus.FAILED: names.TRIAL_FAILED,
}


async def trial_started(events: RunEvents, session: AsyncSession, trial: TrialStart) -> None:
    await events.publish(
        names.TRIAL_STARTED,
        {
            "trial": trial.number,
            "params_count": trial.params_count,
            "hyperparameters": trial.hyperparameters,
        },
        dedup=f"trial:{trial.number}:started",
        session=session,
    )


async def trial_finished(events: RunEvents, session: AsyncSession, trial: TrialRecord) -> None:
    payload = {
        "trial": trial.number,
        "status": trial.status,
        "score": trial.score,
        "best_epoch": trial.best_epoch,
        "epochs_run": trial.epochs_run,
        "error": trial.error,
    }
    if trial.parent is not None:
        payload["parent"] = trial.parent
    await events.publish(
        TRIAL_FINISHED_EVENTS[TrialStatus(trial.status)],
        payload,
        dedup=f"trial:{trial.number}:finished",
        session=session,
    )
