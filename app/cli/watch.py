"""Progress bars for one run, computed from its events.

Shared by `submit --watch`, `run` and `run --local`.

Trials finished (of `max_trials`; ASHA and Hyperband promotions are trials of their own, so
their total grows) and the epochs of the trial that reported last (live notifications: with
several workers, trials of the run train at once).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.events import names
from app.nas.spec import NasSpec
from app.schemas.runs import (
    EventOut,
    LiveEventOut,
    RunObjective,
    RunOut,
    RunSummary,
    StoredSpec,
)

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


class Watch:
    """Turns a run's events into progress bars on `progress`."""

    def __init__(self, run: RunOut, progress: Progress) -> None:
        self.progress = progress
        try:
            spec: NasSpec | None = NasSpec.model_validate(run.spec)
        except ValidationError:
            spec = None
        self.max_trials = spec.budget.max_trials if spec else 10
        epochs = spec.epochs_per_trial if spec else 10
        # The run's own objective and direction (its result's, else its stored spec's).
        objective = RunObjective.of(RunSummary.read(run.result), spec or StoredSpec.read(run.spec))
        self.direction = objective.direction
        self.objective = objective.name
        self.best: float | None = None
        self.finished = 0
        self.trials = progress.add_task("trials", total=self.max_trials)
        self.epochs = progress.add_task("epochs", total=epochs)

    def on_event(self, event: EventOut | LiveEventOut) -> None:
        payload = event.payload
        trial = payload.get("trial")
        if event.name == names.TRIAL_STARTED:
            self.progress.reset(self.epochs, description=f"trial {trial} epochs")
        elif event.name == names.TRIAL_EPOCH:
            self.progress.update(self.epochs, completed=int(payload.get("epoch") or 0))
            metrics = payload.get("metrics")
            if isinstance(metrics, dict) and self.objective:
                self._better(metrics.get(self.objective))  # best so far, before trials end
        elif event.name in TRIAL_ENDS:
            # ASHA and Hyperband promotions are trials of their own: the total grows.
            self.finished += 1
            total = max(self.max_trials, self.finished)
            self.progress.update(self.trials, completed=self.finished, total=total)
            self._better(payload.get("score"))
        elif event.name == names.STEP_STARTED:
            self.progress.console.log(f"step {payload.get('step')}")
        elif event.name in RUN_ENDS:
            self.progress.console.log(f"{event.name} {json.dumps(payload)}")

    def _better(self, score: Any) -> None:
        if not isinstance(score, int | float) or self.direction is None:
            return
        if self.best is None or (
            score > self.best if self.direction == "max" else score < self.best
        ):
            self.best = float(score)
        self.progress.update(self.trials, description=f"trials (best {self.best:.4g})")
