"""What a run's numbers mean: its objective and direction, trial ranking, progress."""

from __future__ import annotations

import math

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Run, Trial
from app.runs import trials as trial_rows
from app.schemas.runs import Direction, RunObjective, RunProgress, RunSummary, StoredSpec
from app.schemas.trials import ArchitectureSummary, TrialList, TrialOut


def run_summary(run: Run) -> RunSummary | None:
    """The run's stored result, typed (None until it succeeded)."""
    return RunSummary.read(run.result)


def objective_of(run: Run) -> RunObjective:
    """The run's objective and direction: from its result, else from its stored spec."""
    return RunObjective.of(run_summary(run), StoredSpec.read(run.spec))


def ranked(trials: list[Trial], direction: Direction | None) -> list[Trial]:
    """Best first by score (in the run's direction); trials without a score last."""
    sign = -1.0 if direction == "max" else 1.0

    def key(trial: Trial) -> tuple[bool, float, int]:
        score = trial.score
        if score is None or not math.isfinite(score):
            return (True, 0.0, trial.number)
        return (False, sign * score, trial.number)

    return sorted(trials, key=key)


async def run_progress(session: AsyncSession, run: Run) -> RunProgress:
    """Trials finished / budgeted, best score so far (in the run's direction), saga step."""
    done, best_max, best_min = await trial_rows.trial_progress(session, run.id)
    spec = StoredSpec.read(run.spec)
    direction = RunObjective.of(run_summary(run), spec).direction
    return RunProgress(
        trials_done=done,
        trials_total=spec.budget.max_trials,
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
    objective = objective_of(run)
    if best_first:
        trials = ranked(trials, objective.direction)
    return TrialList(
        items=[trial_out(t) for t in trials],
        objective=objective.name,
        direction=objective.direction,
    )
