"""/runs/{id}/trials: the trials of a run, ranked or in order, and one trial's history."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from app.api.deps import OwnerDep, SessionDep
from app.api.routes.runs import PROBLEMS, load_run
from app.errors import NotFound
from app.runs import trials as trial_rows
from app.runs.progress import pareto_of, trial_list, trial_out
from app.schemas.trials import ParetoFront, TrialDetail, TrialList

router = APIRouter(prefix="/runs", tags=["trials"])


@router.get("/{run_id}/trials", response_model=TrialList, responses=PROBLEMS)
async def list_trials(
    run_id: uuid.UUID,
    session: SessionDep,
    owner: OwnerDep,
    sort: Annotated[Literal["number", "score"], Query()] = "number",
) -> TrialList:
    """The run's trials, by number or best score first (`sort=score`)."""
    run = await load_run(session, run_id, owner)
    return trial_list(
        run, await trial_rows.list_trials(session, run_id), best_first=sort == "score"
    )


@router.get("/{run_id}/pareto", response_model=ParetoFront, responses=PROBLEMS)
async def pareto(run_id: uuid.UUID, session: SessionDep, owner: OwnerDep) -> ParetoFront:
    """The run's non-dominated completed trials over its `objectives` (Pareto front)."""
    run = await load_run(session, run_id, owner)
    return pareto_of(run, await trial_rows.list_trials(session, run_id))


@router.get("/{run_id}/trials/{number}", response_model=TrialDetail, responses=PROBLEMS)
async def get_trial(
    run_id: uuid.UUID,
    number: Annotated[int, Path(ge=0, le=2**31 - 1)],
    session: SessionDep,
    owner: OwnerDep,
) -> TrialDetail:
    """One trial with its per-epoch history."""
    await load_run(session, run_id, owner)
    trial = await trial_rows.get_trial(session, run_id, number)
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
