"""Fixtures for the NAS engine tests: a recording reporter and small specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from app.nas.records import TrialRecord, TrialStart
from app.nas.spec import NasSpec


@dataclass
class RecordingReporter:
    """Keeps every progress call, in order."""

    started: list[TrialStart] = field(default_factory=list)
    epochs: list[tuple[int, int, dict[str, float]]] = field(default_factory=list)
    finished: list[TrialRecord] = field(default_factory=list)

    def trial_started(self, trial: TrialStart) -> None:
        self.started.append(trial)

    def epoch_finished(self, trial_number: int, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append((trial_number, epoch, metrics))

    def trial_finished(self, trial: TrialRecord) -> None:
        self.finished.append(trial)


@pytest.fixture
def reporter() -> RecordingReporter:
    return RecordingReporter()


SMALL_SPACE: dict[str, Any] = {
    "minimum_levels": 1,
    "maximum_levels": 3,
    "minimum_units_per_level": 1,
    "maximum_units_per_level": 2,
    "minimum_neurons_per_unit": 4,
    "maximum_neurons_per_unit": 16,
}


def small_spec(dataset_id: str = "iris", **overrides: Any) -> NasSpec:
    """A spec with a small space and short training; ``overrides`` are merged per section.

    Random search unless ``parameters`` names another strategy: these tests count trials and
    epochs (every trial trains the spec's epochs), which the default strategy (asha) does not.
    """
    data: dict[str, Any] = {
        "dataset_id": dataset_id,
        "search_space": dict(SMALL_SPACE),
        "budget": {"max_trials": 3},
        "parameters": {"strategy": "random", "epochs": 2, "batch_size": 32},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return NasSpec.model_validate(data)
