"""The cap on trainable parameters (issue 10, point 7): exact counts before any build, skipped
candidates recorded and replaced, a bound on skips in a row, and a space that cannot fit."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import app.nas.trial as base
from app.config import Settings
from app.nas.backend import keras
from app.nas.builder import build_model
from app.nas.datasets import load_dataset
from app.nas.engine import SearchFailed, TrialRecord, run_search
from app.nas.limits import DEFAULT_MAX_TRAINABLE_PARAMS, ParamsCap
from app.nas.planner import MAX_CONSECUTIVE_OVERSIZED
from app.nas.space import (
    Architecture,
    architectures,
    head_for,
    sample_architecture,
    smallest_trainable_params,
)
from app.nas.spec import DatasetOptions, NasParameters, SearchSpace
from tests.nas.conftest import RecordingReporter, small_spec

#: Spaces that exercise every rule: skips, laterals, orphan repair, wide and narrow units.
SPACES = [
    SearchSpace(
        minimum_levels=1,
        maximum_levels=6,
        minimum_units_per_level=1,
        maximum_units_per_level=5,
        minimum_neurons_per_unit=1,
        maximum_neurons_per_unit=40,
    ),
    SearchSpace(
        minimum_levels=2,
        maximum_levels=4,
        minimum_units_per_level=2,
        maximum_units_per_level=4,
        neurons_per_unit_choices=[3, 17, 64],
        p_lateral_connection=1.0,
        num_lateral_connection_tries_per_unit=3,
        max_consecutive_lateral_connections=2,
        maximum_skip_connection_depth=1,
    ),
    SearchSpace(
        minimum_levels=3,
        maximum_levels=5,
        minimum_units_per_level=1,
        maximum_units_per_level=3,
        minimum_neurons_per_unit=5,
        maximum_neurons_per_unit=9,
        predecessor_level_connection_affinity_factor_main=3.0,
        predecessor_level_connection_affinity_factor_decay_main=1.0,
    ),
]
HEADS = [
    head_for("classification", 2, None),
    head_for("classification", 7, None),
    head_for("regression", 0, None),
]


def samples(count: int, seed: int = 0) -> Iterator[tuple[SearchSpace, Architecture]]:
    rng = np.random.default_rng(seed)
    for index in range(count):
        space = SPACES[index % len(SPACES)]
        head = HEADS[(index // len(SPACES)) % len(HEADS)]
        input_dim = int(rng.integers(1, 50))
        yield space, sample_architecture(space, rng, input_dim=input_dim, head=head)


@pytest.mark.parametrize("chunk", range(6))
def test_the_counts_equal_the_built_models(chunk: int) -> None:
    for _, arch in samples(15, seed=chunk):
        model = build_model(arch)
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        assert arch.trainable_params_count() == trainable
        assert arch.params_count() == model.count_params()
        keras.backend.clear_session(free_memory=False)  # gc per model is slow


def test_no_architecture_is_smaller_than_the_smallest() -> None:
    for space, arch in samples(3000):
        head = head_for("regression", 0, None)
        if arch.output_unit.neurons != 1:
            head = head_for("classification", arch.output_unit.neurons, None)
        smallest = smallest_trainable_params(space, input_dim=arch.input_dim, head=head)
        assert arch.trainable_params_count() >= smallest


@pytest.mark.parametrize(
    ("levels", "units", "neurons"),
    [(1, 1, 4), (2, 1, 4), (2, 2, 3), (3, 2, 5), (3, 3, 2), (4, 2, 1)],
)
def test_the_smallest_is_drawn_when_it_is_likely(levels: int, units: int, neurons: int) -> None:
    # Fixed shape and no lateral tries: only the random picks vary, so the sampler soon
    # draws the cheapest wiring; its count must be exactly the computed minimum.
    space = SearchSpace(
        minimum_levels=levels,
        maximum_levels=levels,
        minimum_units_per_level=units,
        maximum_units_per_level=units,
        neurons_per_unit_choices=[neurons, neurons + 3],
        predecessor_level_connection_affinity_factor_first=0.1,
        predecessor_level_connection_affinity_factor_main=0.1,
        num_lateral_connection_tries_per_unit=0,
    )
    head = head_for("classification", 3, None)
    drawn = islice(architectures(space, 1, input_dim=6, head=head), 3000)
    smallest = smallest_trainable_params(space, input_dim=6, head=head)
    assert min(a.trainable_params_count() for a in drawn) == smallest


def test_the_run_cap_only_lowers_the_service_cap() -> None:
    assert ParamsCap.for_run(1000, None).limit == 1000
    assert ParamsCap.for_run(1000, 10).limit == 10
    assert ParamsCap.for_run(1000, 10**9).limit == 1000
    assert ParamsCap.for_run(1000, 10**9).source == "CEREBROS_MAX_TRAINABLE_PARAMS"
    assert ParamsCap.for_run(1000, 10).source == "parameters.max_params"
    assert NasParameters().max_params is None
    assert Settings().max_trainable_params == DEFAULT_MAX_TRAINABLE_PARAMS


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Trainable parameter counts of the models the search actually builds."""
    counts: list[int] = []

    def build(arch: Architecture, *, seed: int | None = None) -> keras.Model:
        counts.append(arch.trainable_params_count())
        return build_model(arch, seed=seed)

    monkeypatch.setattr(base, "build_model", build)
    return counts


def trainable(record: TrialRecord) -> int:
    return Architecture.from_dict(record.architecture).trainable_params_count()


# Seed 0 of small_spec's space on iris draws 357, 379, 361, 161... trainable parameters.
@pytest.mark.parametrize("strategy", ["random", "successive_halving"])
def test_candidates_over_the_cap_are_recorded_and_replaced(
    tmp_path: Path, built: list[int], strategy: str
) -> None:
    reporter = RecordingReporter()
    spec = small_spec(
        budget={"max_trials": 3},
        parameters={"strategy": strategy, "max_failed_trials": 0, "epochs": 1},
    )
    result = run_search(spec, artifacts_dir=tmp_path, reporter=reporter, max_trainable_params=370)
    assert result.status == "completed"
    trained = [t for t in result.trials if not t.skipped]
    skipped = [t for t in result.trials if t.skipped]
    assert len(trained) == 3  # skips do not use up max_trials
    assert [t.number for t in skipped] == [2]
    assert [t.number for t in trained] == [1, 3, 4]
    assert all(trainable(t) <= 370 for t in trained)
    assert sorted(built) == sorted(trainable(t) for t in trained)  # never built a skip
    (skip,) = skipped
    assert skip.status == "failed" and skip.epochs_run == 0 and skip.score is None
    assert skip.error == (
        "379 trainable parameters exceed the cap of 370 (CEREBROS_MAX_TRAINABLE_PARAMS); "
        "the architecture was not built"
    )
    assert skip.params_count == Architecture.from_dict(skip.architecture).params_count()
    # Reported like any finished trial, but never started.
    assert 2 in [t.number for t in reporter.finished]
    assert 2 not in [t.number for t in reporter.started]


def test_the_spec_can_lower_the_cap(tmp_path: Path, built: list[int]) -> None:
    spec = small_spec(budget={"max_trials": 2}, parameters={"max_params": 370, "epochs": 1})
    result = run_search(spec, artifacts_dir=tmp_path)  # the service default is far higher
    assert [t.number for t in result.trials if t.skipped] == [2]
    assert "(parameters.max_params)" in (result.trials[1].error or "")
    assert max(built) <= 370


def test_skips_in_a_row_end_the_search(tmp_path: Path, built: list[int]) -> None:
    # Only the one-level network (23 parameters) fits; every other draw is refused.
    reporter = RecordingReporter()
    spec = small_spec(
        search_space={"maximum_levels": 8, "maximum_units_per_level": 8},
        budget={"max_trials": 5},
        parameters={"epochs": 1},
    )
    result = run_search(spec, artifacts_dir=tmp_path, reporter=reporter, max_trainable_params=23)
    assert result.status == "exhausted"
    assert result.message.startswith(
        f"no architecture under the cap of 23 trainable parameters after "
        f"{MAX_CONSECUTIVE_OVERSIZED} draws in a row; lower maximum_neurons_per_unit"
    )
    assert "raise CEREBROS_MAX_TRAINABLE_PARAMS" in result.message
    assert built == [23]
    assert result.trials_completed == 1
    skips = [t for t in result.trials if t.skipped]
    assert len(skips) >= MAX_CONSECUTIVE_OVERSIZED
    assert len(reporter.finished) == len(result.trials)


def test_a_space_whose_smallest_network_is_over_the_cap_fails_at_once(
    tmp_path: Path, built: list[int]
) -> None:
    # The largest spec the schema allows (the 1.7e9-parameter run), 1000 inputs.
    data = load_dataset("classification", DatasetOptions(n_features=1000, n_samples=100))
    top: dict[str, Any] = {
        f"{bound}_{name}": value
        for bound in ("minimum", "maximum")
        for name, value in (("levels", 8), ("units_per_level", 8), ("neurons_per_unit", 1024))
    }
    reporter = RecordingReporter()
    spec = small_spec("classification", search_space=top)
    with pytest.raises(SearchFailed) as raised:
        run_search(spec, artifacts_dir=tmp_path, reporter=reporter, dataset=data)
    message = str(raised.value)
    assert message.startswith("the smallest architecture of this search space has ")
    assert "over the cap of 5,000,000; lower minimum_neurons_per_unit" in message
    assert built == [] and reporter.finished == [] and reporter.started == []


def test_the_largest_space_trains_only_what_fits(tmp_path: Path, built: list[int]) -> None:
    data = load_dataset("classification", DatasetOptions(n_features=1000, n_samples=100))
    spec = small_spec(
        "classification",
        search_space={
            "maximum_levels": 8,
            "maximum_units_per_level": 8,
            "minimum_neurons_per_unit": 1,
            "maximum_neurons_per_unit": 1024,
        },
        budget={"max_trials": 2},
        parameters={"epochs": 1},
    )
    result = run_search(spec, artifacts_dir=tmp_path, dataset=data)
    assert len(built) == 2 and max(built) <= DEFAULT_MAX_TRAINABLE_PARAMS
    assert all(trainable(t) > DEFAULT_MAX_TRAINABLE_PARAMS for t in result.trials if t.skipped)


def test_resume_reuses_skips_and_a_skip_stays_final(tmp_path: Path, built: list[int]) -> None:
    spec = small_spec(budget={"max_trials": 3}, parameters={"epochs": 1})
    first = RecordingReporter()
    interrupted = run_search(
        spec,
        artifacts_dir=tmp_path / "a",
        reporter=first,
        should_stop=lambda: len(first.finished) >= 2,  # trial 1 trained, trial 2 skipped
        max_trainable_params=370,
    )
    done = [TrialRecord.from_dict(t.to_dict()) for t in interrupted.trials]
    assert [(t.number, t.skipped) for t in done] == [(1, False), (2, True)]
    again = RecordingReporter()
    resumed = run_search(
        spec,
        artifacts_dir=tmp_path / "a",
        reporter=again,
        completed_trials=done,
        max_trainable_params=370,
    )
    assert [(t.number, t.skipped) for t in resumed.trials] == [
        (1, False),
        (2, True),
        (3, False),
        (4, False),
    ]
    assert [t.number for t in again.finished] == [3, 4]  # the skip is not reported twice
    # A trial number ends once: with the cap raised since, the skip stays a skip (its
    # record is final) and the budget is filled with the next candidates.
    raised = run_search(spec, artifacts_dir=tmp_path / "b", completed_trials=done)
    assert [(t.number, t.skipped) for t in raised.trials] == [
        (1, False),
        (2, True),
        (3, False),
        (4, False),
    ]
