"""The trial events a run publishes (one place for their payloads)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import TrialStatus
from app.events import names
from app.events.publish import RunEvents
from app.nas.records import TrialRecord, TrialStart
from app.nas.space import Architecture

TRIAL_FINISHED_EVENTS = {
    TrialStatus.COMPLETED: names.TRIAL_COMPLETED,
    TrialStatus.PRUNED: names.TRIAL_PRUNED,
    TrialStatus.FAILED: names.TRIAL_FAILED,
}


async def trial_started(events: RunEvents, session: AsyncSession, trial: TrialStart) -> None:
    """A live-only notification (no row, no event id), sent when the claim commits.

    Like the epochs: the trial's durable record is its end (`trial_finished`, with its
    history), so a trial costs one durable commit, and no event id a client can hold is
    ever lost (the claim's commit does not wait for the WAL flush, `app.pipeline.trial_job`).
    """
    await events.notify_live(
        names.TRIAL_STARTED,
        {
            "trial": trial.number,
            "params_count": trial.params_count,
            "hyperparameters": trial.hyperparameters,
        },
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


def lost_record(number: int, request: dict[str, Any], error: str) -> TrialRecord:
    """The failed record of a trial that was never trained to its end (lost, invalid)."""
    arch = request.get("architecture") or {}
    try:
        parsed = Architecture.from_dict(arch)
        hyper, params, fingerprint = (
            parsed.hyperparameters(),
            parsed.params_count(),
            (parsed.fingerprint()),
        )
    except (KeyError, ValueError, TypeError):
        hyper, params, fingerprint = {}, 0, ""
    return TrialRecord(
        number=number,
        status="failed",
        architecture=arch,
        hyperparameters=hyper,
        params_count=params,
        error=error,
        fingerprint=fingerprint,
        epochs_target=int(request.get("epochs") or 0),
        parent=request.get("parent"),
        initial_epoch=int(request.get("initial_epoch") or 0),
    )
