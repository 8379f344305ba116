"""The progress bars `submit --watch` and `run --local` compute from a run's events."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import Progress

from app.cli.watch import Watch
from app.events import names
from app.schemas.runs import EventOut, RunOut

RUN_ID = uuid.uuid4()
# 9 candidates, reduction factor 3: rungs of 9 x 1 epoch, 3 x 3 epochs, 1 x 9 epochs.
HALVING = {
    "dataset_id": "iris",
    "budget": {"max_trials": 9},
    "parameters": {"strategy": "successive_halving", "epochs": 9, "reduction_factor": 3},
}


class Events:
    def __init__(self) -> None:
        self.next_id = 0

    def __call__(self, name: str, **payload: Any) -> EventOut:
        self.next_id += 1
        now = datetime.now(UTC)
        return EventOut(id=self.next_id, run_id=RUN_ID, name=name, payload=payload, created_at=now)


def watch(spec: dict[str, Any]) -> tuple[Watch, Progress]:
    now = datetime.now(UTC)
    run = RunOut(
        id=RUN_ID, owner="local", status="running", spec=spec, created_at=now, updated_at=now
    )
    progress = Progress(console=Console(file=io.StringIO()))
    return Watch(run, progress), progress


def bars(progress: Progress) -> list[tuple[float, float | None]]:
    return [(task.completed, task.total) for task in progress.tasks]


def test_successive_halving_bars_move_during_the_first_rung() -> None:
    view, progress = watch(HALVING)
    event = Events()
    for trial in range(1, 10):
        view.on_event(event(names.TRIAL_STARTED, trial=trial))
        view.on_event(event(names.TRIAL_EPOCH, trial=trial, epoch=1, metrics={"val_accuracy": 0.5}))
        if trial == 4:
            # Four candidates of the first rung trained: no trial has ended yet, but the
            # first bar says 4 of 9 (it used to say 0/9 until the rung was over).
            assert bars(progress)[0] == (4, 9)
    assert bars(progress)[0] == (9, 9)
    assert bars(progress)[2] == (9, 9 * 1 + 3 * 2 + 1 * 6)  # every epoch of the schedule

    for trial in range(4, 10):  # the worst six are pruned after the first rung
        view.on_event(event(names.TRIAL_PRUNED, trial=trial, score=0.5))
    for trial in (1, 2, 3):  # the best three continue to 3 epochs
        for epoch in (2, 3):
            view.on_event(event(names.TRIAL_EPOCH, trial=trial, epoch=epoch, metrics={}))
        if trial == 1:
            assert bars(progress)[0] == (1, 3)
            assert bars(progress)[1] == (3, 3)  # the trial's epochs, to this rung's target
    for trial in (2, 3):
        view.on_event(event(names.TRIAL_PRUNED, trial=trial, score=0.6))
    for epoch in range(4, 10):
        view.on_event(event(names.TRIAL_EPOCH, trial=1, epoch=epoch, metrics={}))
    view.on_event(event(names.TRIAL_COMPLETED, trial=1, score=0.9))
    assert bars(progress) == [(1, 1), (9, 9), (21, 21)]
    assert "best 0.9" in progress.tasks[2].description


def test_random_search_bars_count_trials_and_epochs() -> None:
    view, progress = watch({"dataset_id": "iris", "budget": {"max_trials": 3}})
    event = Events()
    view.on_event(event(names.TRIAL_STARTED, trial=1))
    view.on_event(event(names.TRIAL_EPOCH, trial=1, epoch=4, metrics={}))
    view.on_event(event(names.TRIAL_COMPLETED, trial=1, score=0.7))
    assert bars(progress) == [(1, 3), (4, 10)]
    assert "best 0.7" in progress.tasks[0].description
