"""What a run's numbers mean: its objective and direction, trial ranking, progress."""

from __future__ import annotations

import math

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Run, Trial, TrialStatus
from app.nas.pareto import pareto_front
from app.nas.spec import NasSpec
from app.runs import trials as trial_rows
from app.schemas.runs import Direction, RunObjective, RunProgress, RunSummary, StoredSpec
from app.schemas.trials import (
    ArchitectureSummary,
    ParetoFront,
    ParetoObjective,
    ParetoTrial,
    TrialList,
    TrialOut,
)


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


def pareto_of(run: Run, trials: list[Trial]) -> ParetoFront:
    """The non-dominated completed trials over the run's objectives (`GET /runs/{id}/pareto`).

    A single-objective run's front is its best trial(s). Trials without every objective
    measured (failed, cancelled, or recorded before objectives existed) are left out.
    """
    spec = NasSpec.model_validate(run.spec)
    objectives = spec.resolved_objectives
    names = [name for name, _ in objectives]
    members: list[tuple[Trial, dict[str, float]]] = []
    for trial in trials:
        if trial.status != TrialStatus.COMPLETED:
            continue
        values = dict((trial.record or {}).get("objectives") or {})
        if not spec.objectives and trial.score is not None:
            values = {names[0]: float(trial.score)}
        if all(name in values for name in names):
            members.append((trial, values))
    points = [[values[name] for name in names] for _, values in members]
    front = [members[i] for i in pareto_front(points, [d for _, d in objectives])]
    first, direction = objectives[0]
    front.sort(
        key=lambda m: (-m[1][first] if direction == "maximize" else m[1][first], m[0].number)
    )
    return ParetoFront(
        objectives=[ParetoObjective(name=n, direction=d) for n, d in objectives],
        items=[
            ParetoTrial(
                number=t.number, objectives=values, score=t.score, params_count=t.params_count
            )
            for t, values in front
        ],
    )
