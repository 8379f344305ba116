"""What a run's numbers mean: its objective and direction, trial ranking, progress."""

from __future__ import annotations

import math
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Run, Trial
from app.nas.spec import Budget, NasSpec, objective_direction
from app.runs import repository
from app.schemas.runs import RunProgress
from app.schemas.trials import ArchitectureSummary, TrialList, TrialOut


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


def ranked(trials: list[Trial], direction: Literal["max", "min"] | None) -> list[Trial]:
    """Best first by score (in the run's direction); trials without a score last."""
    sign = -1.0 if direction == "max" else 1.0

    def key(trial: Trial) -> tuple[bool, float, int]:
        scored = trial.score is not None and math.isfinite(trial.score)
        return (not scored, sign * trial.score if scored else 0.0, trial.number)  # type: ignore[operator]

    return sorted(trials, key=key)


async def run_progress(session: AsyncSession, run: Run) -> RunProgress:
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


def trial_out(trial: Trial) -> TrialOut:
    return TrialOut.model_validate(
        {
            **{k: getattr(trial, k) for k in TrialOut.model_fields if k != "architecture"},
            "architecture": ArchitectureSummary.of(trial.architecture),
        }
    )


def trial_list(run: Run, trials: list[Trial], *, best_first: bool) -> TrialList:
    """The run's trials as the API lists them: by number, or best score first."""
    objective, direction = objective_of(run)
    if best_first:
        trials = ranked(trials, direction)
    return TrialList(items=[trial_out(t) for t in trials], objective=objective, direction=direction)
