"""/runs/{id}/trials: the trials of a run, ranked or in order, and one trial's history."""

from __future__ import annotations

import math
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from app.api.deps import OwnerDep, SessionDep
from app.api.routes.runs import PROBLEMS, load_run
from app.db.models import Run, Trial
from app.errors import NotFound
from app.nas.spec import Budget, NasSpec, objective_direction
from app.runs import repository
from app.schemas.runs import RunProgress
from app.schemas.trials import ArchitectureSummary, TrialDetail, TrialList, TrialOut

router = APIRouter(prefix="/runs", tags=["trials"])


def objective_of(run: Run) -> tuple[str | None, Literal["max", "min"] | None]:
    """The run's objective and direction: from its result, else from its spec."""
    result = run.result or {}
    if result.get("direction") in ("max", "min"):
        return result.get("objective"), result["direction"]
    try:
        spec = NasSpec.model_validate(run.spec)
    except ValueError:
        objective = run.spec.get("objective")
        return objective, objective_direction(objective) if objective else None
    return spec.resolved_objective, spec.direction


def trial_out(trial: Trial) -> TrialOut:
    return TrialOut.model_validate(
        {
            **{k: getattr(trial, k) for k in TrialOut.model_fields if k != "architecture"},
            "architecture": ArchitectureSummary.of(trial.architecture),
        }
    )


def ranked(trials: list[Trial], direction: Literal["max", "min"] | None) -> list[Trial]:
    """Best first by score (in the run's direction); trials without a score last."""
    sign = -1.0 if direction == "max" else 1.0

    def key(trial: Trial) -> tuple[bool, float, int]:
        scored = trial.score is not None and math.isfinite(trial.score)
        return (not scored, sign * trial.score if scored else 0.0, trial.number)  # type: ignore[operator]

    return sorted(trials, key=key)


@router.get("/{run_id}/trials", response_model=TrialList, responses=PROBLEMS)
async def list_trials(
    run_id: uuid.UUID,
    session: SessionDep,
    owner: OwnerDep,
    sort: Annotated[Literal["number", "score"], Query()] = "number",
) -> TrialList:
    """The run's trials, by number or best score first (`sort=score`)."""
    run = await load_run(session, run_id, owner)
    objective, direction = objective_of(run)
    trials = await repository.list_trials(session, run_id)
    if sort == "score":
        trials = ranked(trials, direction)
    return TrialList(items=[trial_out(t) for t in trials], objective=objective, direction=direction)


@router.get("/{run_id}/trials/{number}", response_model=TrialDetail, responses=PROBLEMS)
async def get_trial(
    run_id: uuid.UUID,
    number: Annotated[int, Path(ge=0, le=2**31 - 1)],
    session: SessionDep,
    owner: OwnerDep,
) -> TrialDetail:
    """One trial with its per-epoch history."""
    await load_run(session, run_id, owner)
    trial = await repository.get_trial(session, run_id, number)
    if trial is None:
        raise NotFound(f"run {run_id} has no trial {number}")
    return TrialDetail.model_validate(
        {
            **trial_out(trial).model_dump(),
            "hyperparameters": trial.hyperparameters,
            "architecture_spec": trial.architecture,
            "history": trial.history or [],
            "error": trial.error,
        }
    )


async def run_progress(session: SessionDep, run: Run) -> RunProgress:
    """Trials finished / budgeted, best score so far (in the run's direction), saga step."""
    done, best_max, best_min = await repository.trial_progress(session, run.id)
    _, direction = objective_of(run)
    budget = (run.spec.get("budget") or {}).get("max_trials")
    return RunProgress(
        trials_done=done,
        trials_total=int(budget) if isinstance(budget, int) else Budget().max_trials,
        best_score=best_max if direction == "max" else best_min,
        current_step=run.current_step,
    )
