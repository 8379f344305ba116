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
# 4 candidates, reduction factor 2: ASHA promotes 2 to 2 epochs, then 1 to 4 epochs.
ASHA = {
    "dataset_id": "iris",
    "budget": {"max_trials": 4},
    "parameters": {"strategy": "asha", "epochs": 4, "reduction_factor": 2},
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


def test_asha_promotions_grow_the_trials_bar() -> None:
    view, progress = watch(ASHA)
    event = Events()
    for trial in range(1, 5):
        view.on_event(event(names.TRIAL_STARTED, trial=trial))
        view.on_event(event(names.TRIAL_EPOCH, trial=trial, epoch=1, metrics={"val_accuracy": 0.5}))
        view.on_event(event(names.TRIAL_COMPLETED, trial=trial, score=0.5 + trial / 100))
    assert bars(progress)[0] == (4, 4)
    for trial, parent in ((5, 4), (6, 3)):  # promotions: trials of their own
        view.on_event(event(names.TRIAL_STARTED, trial=trial))
        view.on_event(event(names.TRIAL_EPOCH, trial=trial, epoch=2, metrics={}))
        assert bars(progress)[1] == (2, 4)
        view.on_event(event(names.TRIAL_COMPLETED, trial=trial, parent=parent, score=0.7))
    assert bars(progress)[0] == (6, 6)
    assert "best 0.7" in progress.tasks[0].description


def test_random_search_bars_count_trials_and_epochs() -> None:
    spec = {"dataset_id": "iris", "budget": {"max_trials": 3}, "parameters": {"strategy": "random"}}
    view, progress = watch(spec)
    event = Events()
    view.on_event(event(names.TRIAL_STARTED, trial=1))
    view.on_event(event(names.TRIAL_EPOCH, trial=1, epoch=4, metrics={}))
    view.on_event(event(names.TRIAL_COMPLETED, trial=1, score=0.7))
    assert bars(progress) == [(1, 3), (4, 10)]
    assert "best 0.7" in progress.tasks[0].description
