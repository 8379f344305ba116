"""run_search end to end: real training, budgets, cancellation, failures, resume, artifacts."""

from __future__ import annotations

import csv
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.nas.artifacts import load_best_model, predict, remove_artifacts
from app.nas.datasets import load_dataset
from app.nas.engine import SearchFailed, SearchResult, TrialRecord, run_search
from tests.nas.conftest import RecordingReporter, small_spec

DIGITS = {
    "search_space": {
        "maximum_levels": 2,
        "minimum_neurons_per_unit": 16,
        "maximum_neurons_per_unit": 32,
    },
    "parameters": {"epochs": 4, "batch_size": 64, "reduction_factor": 2, "seed": 1},
    "budget": {"max_trials": 4},
}


@pytest.fixture(scope="module")
def digits_random(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[SearchResult, RecordingReporter]:
    reporter = RecordingReporter()
    spec = small_spec("digits", **DIGITS)
    result = run_search(spec, artifacts_dir=tmp_path_factory.mktemp("rnd"), reporter=reporter)
    return result, reporter


@pytest.mark.slow
def test_random_search_on_digits_learns(
    digits_random: tuple[SearchResult, RecordingReporter],
) -> None:
    result, reporter = digits_random
    assert result.status == "completed"
    assert [t.number for t in result.trials] == [1, 2, 3, 4]
    assert result.best is not None
    assert result.best.score is not None and result.best.score > 0.8
    assert result.best.score == max(t.score for t in result.trials if t.score is not None)
    assert result.best.best_epoch is not None
    best_epoch_metrics = result.best.history[result.best.best_epoch - 1]
    assert best_epoch_metrics["val_accuracy"] == result.best.score
    # Reporter saw every trial, every epoch, in order.
    assert [s.number for s in reporter.started] == [1, 2, 3, 4]
    assert len(reporter.epochs) == 16 == result.total_epochs
    assert [f.number for f in reporter.finished] == [1, 2, 3, 4]
    assert all(s.params_count > 0 for s in reporter.started)


@pytest.mark.slow
def test_successive_halving_uses_fewer_epochs(
    digits_random: tuple[SearchResult, RecordingReporter], tmp_path: Path
) -> None:
    random_result, _ = digits_random
    reporter = RecordingReporter()
    spec = small_spec(
        "digits",
        **{**DIGITS, "parameters": {**DIGITS["parameters"], "strategy": "successive_halving"}},
    )
    result = run_search(spec, artifacts_dir=tmp_path, reporter=reporter)
    assert result.status == "completed"
    # Same seed, same new candidates as the random search; promotions are trials of their
    # own that continue their parent's saved model.
    roots = [t for t in result.trials if t.parent is None]
    assert [t.fingerprint for t in roots] == [t.fingerprint for t in random_result.trials]
    assert result.total_epochs < random_result.total_epochs
    assert all(t.status == "completed" for t in result.trials)
    # 4 candidates at 1 epoch; ASHA promotes the best 1/2 of each rung: 2 -> 2 epochs,
    # then 1 -> 4 epochs.
    by_number = {t.number: t for t in result.trials}
    promotions = [t for t in result.trials if t.parent is not None]
    assert sorted((t.initial_epoch, t.epochs_target) for t in promotions) == [
        (1, 2),
        (1, 2),
        (2, 4),
    ]
    for child in promotions:
        parent = by_number[child.parent or 0]
        assert child.fingerprint == parent.fingerprint
        assert child.epochs_run == child.epochs_target - child.initial_epoch
        assert child.history[0]["epoch"] == child.initial_epoch + 1
    assert len(reporter.started) == len(result.trials)
    assert not (tmp_path / ".work").exists()


def test_max_trials_is_exact_and_artifacts_are_written(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    result = run_search(
        small_spec(budget={"max_trials": 3}), artifacts_dir=tmp_path, reporter=reporter
    )
    assert len(result.trials) == 3 == len(reporter.started)
    assert result.trials_completed == 3
    for name in ("best_model", "architecture", "history", "preprocessing", "result"):
        assert Path(result.artifacts[name]).exists()
    with open(result.artifacts["history"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == result.total_epochs
    assert {int(r["trial"]) for r in rows} == {1, 2, 3}
    # The saved best model is the best trial's own model, usable for prediction.
    data = load_dataset("iris")
    model = load_best_model(tmp_path)
    assert result.best is not None
    assert model.count_params() == result.best.params_count
    raw_rows = (data.x_val * data.x_std + data.x_mean).tolist()
    predicted = predict(tmp_path, raw_rows)
    accuracy = float(np.mean(np.asarray(predicted) == data.y_val))
    assert accuracy == pytest.approx(result.best.history[-1]["val_accuracy"], abs=0.05)
    remove_artifacts(tmp_path)
    assert not tmp_path.exists()
    remove_artifacts(tmp_path)  # idempotent


def test_max_seconds_times_out(tmp_path: Path) -> None:
    spec = small_spec(
        budget={"max_trials": 50, "max_seconds": 1.5}, parameters={"epochs": 50, "batch_size": 8}
    )
    started = time.monotonic()
    result = run_search(spec, artifacts_dir=tmp_path)
    elapsed = time.monotonic() - started
    assert result.status == "timed_out"
    assert len(result.trials) < 50
    assert elapsed < 10


def test_cancellation_stops_within_the_epoch(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    spec = small_spec(budget={"max_trials": 5}, parameters={"epochs": 20})
    stop_after = 3

    def should_stop() -> bool:
        return len(reporter.epochs) >= stop_after

    result = run_search(spec, artifacts_dir=tmp_path, reporter=reporter, should_stop=should_stop)
    assert result.status == "cancelled"
    assert len(reporter.epochs) == stop_after  # no epoch ran after the request
    assert result.trials == []  # the interrupted trial is not recorded


def test_cancellation_inside_an_epoch(tmp_path: Path) -> None:
    calls = 0

    def should_stop() -> bool:  # becomes true while the first epoch is still running
        nonlocal calls
        calls += 1
        return calls > 2

    reporter = RecordingReporter()
    spec = small_spec("digits", parameters={"epochs": 5, "batch_size": 8})
    result = run_search(spec, artifacts_dir=tmp_path, reporter=reporter, should_stop=should_stop)
    assert result.status == "cancelled"
    assert reporter.epochs == []


def nan_dataset():
    data = load_dataset("iris")
    x = data.x_train.copy()
    x[::7, 0] = np.nan  # real NaNs flow through BatchNormalization into the loss
    return replace(data, x_train=x)


def test_failing_trials_are_recorded_and_the_search_goes_on(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    spec = small_spec(budget={"max_trials": 3}, parameters={"max_failed_trials": 3})
    result = run_search(spec, artifacts_dir=tmp_path, reporter=reporter, dataset=nan_dataset())
    assert [t.status for t in result.trials] == ["failed"] * 3
    assert all("non-finite" in (t.error or "") or "nan" in (t.error or "") for t in result.trials)
    assert result.best is None
    assert len(reporter.finished) == 3


def test_too_many_failures_raise(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    spec = small_spec(budget={"max_trials": 5}, parameters={"max_failed_trials": 1})
    with pytest.raises(SearchFailed, match="max_failed_trials=1"):
        run_search(spec, artifacts_dir=tmp_path, reporter=reporter, dataset=nan_dataset())
    assert [t.status for t in reporter.finished] == ["failed", "failed"]


def test_exhausted_space_never_trains_a_duplicate(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    spec = small_spec(
        search_space={"minimum_levels": 1, "maximum_levels": 1, "learning_rate": [0.01, 0.05]},
        budget={"max_trials": 5},
        parameters={"epochs": 1},
    )
    result = run_search(spec, artifacts_dir=tmp_path, reporter=reporter)
    assert result.status == "exhausted"
    assert "exhausted" in result.message
    assert len(result.trials) == 2 == len(reporter.started)
    assert len({t.fingerprint for t in result.trials}) == 2


def test_same_seed_same_architectures(tmp_path: Path) -> None:
    def fingerprints(seed: int, folder: str) -> list[str]:
        spec = small_spec(budget={"max_trials": 3}, parameters={"epochs": 1, "seed": seed})
        return [t.fingerprint for t in run_search(spec, artifacts_dir=tmp_path / folder).trials]

    first = fingerprints(7, "a")
    assert fingerprints(7, "b") == first
    assert fingerprints(8, "c") != first


@pytest.mark.parametrize("strategy", ["random", "successive_halving"])
def test_resume_skips_completed_trials(tmp_path: Path, strategy: str) -> None:
    spec = small_spec(budget={"max_trials": 4}, parameters={"strategy": strategy, "epochs": 3})
    full = run_search(spec, artifacts_dir=tmp_path / "full")
    # Interrupt a run after two trials are final, as the service would see it.
    first = RecordingReporter()
    interrupted = run_search(
        spec,
        artifacts_dir=tmp_path / "run",
        reporter=first,
        should_stop=lambda: len(first.finished) >= 2,
    )
    assert interrupted.status == "cancelled"
    done = [TrialRecord.from_dict(t.to_dict()) for t in interrupted.trials]
    assert len(done) == 2
    full_numbers = {t.number for t in full.trials}
    second = RecordingReporter()
    resumed = run_search(
        spec, artifacts_dir=tmp_path / "run", reporter=second, completed_trials=done
    )
    assert resumed.status == "completed"
    assert len(resumed.trials) == len(full.trials)
    trained = {s.number for s in second.started}
    assert trained.isdisjoint({t.number for t in done})
    assert trained | {t.number for t in done} == full_numbers
    for old in done:  # reused records are kept as they were
        assert resumed.trials[old.number - 1] == old
    assert [t.fingerprint for t in resumed.trials] == [t.fingerprint for t in full.trials]


def test_regression_objective_is_minimised(tmp_path: Path) -> None:
    spec = small_spec(
        "diabetes", objective="val_mae", budget={"max_trials": 2}, parameters={"epochs": 3}
    )
    result = run_search(spec, artifacts_dir=tmp_path)
    assert result.direction == "min"
    assert result.best is not None
    assert result.best.score == min(t.score for t in result.trials if t.score is not None)
    assert result.best.score == min(h["val_mae"] for h in result.best.history)


def test_early_stopping_cuts_training(tmp_path: Path) -> None:
    spec = small_spec(
        budget={"max_trials": 2},
        parameters={"epochs": 60, "early_stopping_patience": 1, "batch_size": 64},
        search_space={"learning_rate": [0.05]},
    )
    result = run_search(spec, artifacts_dir=tmp_path)
    for trial in result.trials:
        assert trial.epochs_run < 60
        assert trial.best_epoch is not None
        assert trial.epochs_run - trial.best_epoch == 1  # stopped right after patience ran out
