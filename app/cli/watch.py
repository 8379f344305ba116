"""Progress bars for one run, computed from its events.

Shared by `submit --watch`, `run` and `run --local`.

Random search: trials finished of `max_trials`, and the current trial's epochs. Successive
halving finishes no trial before its first rung is over (all its candidates are pruned or
promoted together), so a trials bar would sit at 0/N for most of the run; it shows instead
the candidates done in the current rung, the current candidate's epochs up to that rung's
target, and the epochs of the whole schedule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.events import names
from app.nas.spec import NasSpec
from app.schemas.runs import EventOut, RunObjective, RunOut, RunSummary, StoredSpec

TRIAL_ENDS = (names.TRIAL_COMPLETED, names.TRIAL_PRUNED, names.TRIAL_FAILED)
RUN_ENDS = (names.RUN_COMPLETED, names.RUN_FAILED, names.RUN_CANCELLED)


def progress_bars(progress_console: Any) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=progress_console,
        transient=False,
    )


@dataclass(frozen=True)
class Rung:
    candidates: int
    epochs: int  # the total epochs a candidate reaches in this rung


def _rungs(spec: NasSpec) -> list[Rung]:
    # The schedule is the engine's own; its module imports Keras (seconds), so only a
    # successive-halving watch pays for it.
    from app.nas.strategies.successive_halving import rung_schedule

    params = spec.parameters
    schedule = rung_schedule(
        spec.budget.max_trials, params.min_epochs, spec.epochs_per_trial, params.reduction_factor
    )
    return [Rung(count, epochs) for count, epochs in schedule]


class Watch:
    """Turns a run's events into progress bars on `progress`."""

    def __init__(self, run: RunOut, progress: Progress) -> None:
        self.progress = progress
        try:
            spec: NasSpec | None = NasSpec.model_validate(run.spec)
        except ValidationError:
            spec = None
        max_trials = spec.budget.max_trials if spec else 10
        epochs = spec.epochs_per_trial if spec else 10
        # The run's own objective and direction (its result's, else its stored spec's).
        objective = RunObjective.of(RunSummary.read(run.result), spec or StoredSpec.read(run.spec))
        self.direction = objective.direction
        self.objective = objective.name
        self.best: float | None = None
        self.rungs: list[Rung] = []
        if spec is not None and spec.parameters.strategy == "successive_halving":
            self.rungs = _rungs(spec)
        self.trial: int | None = None
        if self.rungs:
            self.rung = 0
            self.done: set[int] = set()  # candidates finished with the current rung
            first = self.rungs[0]
            self.trials = progress.add_task(self._rung_label(), total=first.candidates)
            self.epochs = progress.add_task("epochs", total=first.epochs)
            total = sum(
                r.candidates * (r.epochs - (self.rungs[i - 1].epochs if i else 0))
                for i, r in enumerate(self.rungs)
            )
            self.all_epochs = progress.add_task("all epochs", total=total)
        else:
            self.trials = progress.add_task("trials", total=max_trials)
            self.epochs = progress.add_task("epochs", total=epochs)

    def _rung_label(self) -> str:
        rung = self.rungs[self.rung]
        return f"rung {self.rung + 1}/{len(self.rungs)}: candidates to {rung.epochs} epochs"

    def _rung_of(self, epoch: int) -> int:
        for index, rung in enumerate(self.rungs):
            if epoch <= rung.epochs:
                return index
        return len(self.rungs) - 1

    def on_event(self, event: EventOut) -> None:
        payload = event.payload
        trial = payload.get("trial")
        if event.name == names.TRIAL_STARTED and not self.rungs:
            self.progress.reset(self.epochs, description=f"trial {trial} epochs")
        elif event.name == names.TRIAL_EPOCH:
            self._on_epoch(int(trial or 0), int(payload.get("epoch") or 0))
            metrics = payload.get("metrics")
            if isinstance(metrics, dict) and self.objective:
                self._better(metrics.get(self.objective))  # best so far, before trials end
        elif event.name in TRIAL_ENDS:
            if self.rungs:
                self._rung_done(int(trial or 0))  # pruned, failed or completed in this rung
            else:
                self.progress.advance(self.trials)
            self._better(payload.get("score"))
        elif event.name == names.STEP_STARTED:
            self.progress.console.log(f"step {payload.get('step')}")
        elif event.name in RUN_ENDS:
            self.progress.console.log(f"{event.name} {json.dumps(payload)}")

    def _on_epoch(self, trial: int, epoch: int) -> None:
        if not self.rungs:
            self.progress.update(self.epochs, completed=epoch)
            return
        rung = self._rung_of(epoch)
        if rung > self.rung:
            self.rung, self.done = rung, set()
            total = self.rungs[rung].candidates
            self.progress.reset(self.trials, total=total, description=self._rung_label())
        target = self.rungs[rung].epochs
        if trial != self.trial:
            self.trial = trial
            self.progress.update(self.epochs, total=target, description=f"trial {trial} epochs")
        self.progress.update(self.epochs, completed=epoch)
        self.progress.advance(self.all_epochs)
        if epoch >= target:
            self._rung_done(trial)

    def _rung_done(self, trial: int) -> None:
        self.done.add(trial)
        self.progress.update(self.trials, completed=len(self.done))

    def _better(self, score: Any) -> None:
        if not isinstance(score, int | float) or self.direction is None:
            return
        if self.best is None or (
            score > self.best if self.direction == "max" else score < self.best
        ):
            self.best = float(score)
        task = self.all_epochs if self.rungs else self.trials
        label = "all epochs" if self.rungs else "trials"
        self.progress.update(task, description=f"{label} (best {self.best:.4g})")
