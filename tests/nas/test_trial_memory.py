"""A failed, cancelled or refused trial leaves no model behind (issue 10, point 7).

Every model the search builds is watched through a weak reference. "Freed" means freed by
the engine itself: the tests never call ``gc.collect()``, so a model kept alive by an
exception's traceback, or caught by the one-time ``gc.freeze()`` while still referenced,
shows up as a live reference.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import app.nas.backend as backend
import app.nas.trainer as trainer
import app.nas.trial as base
from app.nas.backend import keras
from app.nas.builder import build_model
from app.nas.datasets import Dataset, load_dataset
from app.nas.engine import SearchFailed, run_search
from app.nas.space import Architecture
from tests.nas.conftest import RecordingReporter, small_spec


@dataclass
class ModelWatch:
    """Wraps `build_model`: remembers each model weakly and what was alive at each build."""

    refs: list[weakref.ref[keras.Model]] = field(default_factory=list)
    alive_at_build: list[int] = field(default_factory=list)
    fail_after_build: str | None = None

    def build(self, arch: Architecture, *, seed: int | None = None) -> keras.Model:
        self.alive_at_build.append(self.alive())
        model = build_model(arch, seed=seed)
        self.refs.append(weakref.ref(model))
        if self.fail_after_build is not None:
            # As an allocation failure halfway through a build: the frame holds the model.
            raise MemoryError(self.fail_after_build)
        return model

    def alive(self) -> int:
        return sum(ref() is not None for ref in self.refs)


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelWatch]:
    watch = ModelWatch()
    monkeypatch.setattr(base, "build_model", watch.build)
    # As in a fresh worker: the heap has not been frozen yet, so whatever is alive when the
    # engine freezes it would stay uncollectable for the life of the process.
    monkeypatch.setattr(backend, "_heap_frozen", False)
    yield watch


def nan_dataset() -> Dataset:
    data = load_dataset("iris")
    x = data.x_train.copy()
    x[::7, 0] = np.nan  # real NaNs reach the loss: the trial fails inside fit
    return replace(data, x_train=x)


def fail_in_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A callback error inside ``model.fit`` (a backend error, as fit_candidate sees it)."""

    def boom(self: Any, batch: int, logs: dict[str, Any] | None = None) -> None:
        raise RuntimeError("injected failure inside fit")

    monkeypatch.setattr(trainer._TrialCallback, "on_train_batch_end", boom)


@pytest.mark.parametrize("strategy", ["random", "successive_halving"])
def test_failed_trials_free_their_model_before_the_next_is_built(
    tmp_path: Path, watch: ModelWatch, strategy: str
) -> None:
    spec = small_spec(
        budget={"max_trials": 4}, parameters={"max_failed_trials": 4, "strategy": strategy}
    )
    result = run_search(spec, artifacts_dir=tmp_path, dataset=nan_dataset())
    assert [t.status for t in result.trials] == ["failed"] * 4
    assert watch.alive_at_build == [0, 0, 0, 0]
    assert watch.alive() == 0


def test_a_backend_error_in_fit_frees_the_model(
    tmp_path: Path, watch: ModelWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_in_fit(monkeypatch)
    spec = small_spec(budget={"max_trials": 3}, parameters={"max_failed_trials": 3})
    result = run_search(spec, artifacts_dir=tmp_path)
    assert all("injected failure" in (t.error or "") for t in result.trials)
    assert watch.alive_at_build == [0, 0, 0]
    assert watch.alive() == 0


def test_a_failure_while_building_frees_the_partial_model(
    tmp_path: Path, watch: ModelWatch
) -> None:
    watch.fail_after_build = "cannot allocate"
    spec = small_spec(budget={"max_trials": 3}, parameters={"max_failed_trials": 3})
    result = run_search(spec, artifacts_dir=tmp_path)
    assert all("could not build" in (t.error or "") for t in result.trials)
    assert watch.alive_at_build == [0, 0, 0]
    assert watch.alive() == 0


def test_too_many_failures_leave_no_model_behind(
    tmp_path: Path, watch: ModelWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_in_fit(monkeypatch)
    spec = small_spec(budget={"max_trials": 3}, parameters={"max_failed_trials": 0})
    with pytest.raises(SearchFailed, match="max_failed_trials=0") as raised:
        run_search(spec, artifacts_dir=tmp_path)
    # The error the worker keeps (and logs) must not hold the trial's frames.
    assert raised.value.__context__ is None and raised.value.__cause__ is None
    assert watch.alive() == 0


@pytest.mark.parametrize("strategy", ["random", "successive_halving"])
def test_a_cancelled_trial_frees_its_model(
    tmp_path: Path, watch: ModelWatch, strategy: str
) -> None:
    reporter = RecordingReporter()
    spec = small_spec(
        "digits", budget={"max_trials": 2}, parameters={"epochs": 5, "strategy": strategy}
    )
    result = run_search(
        spec,
        artifacts_dir=tmp_path,
        reporter=reporter,
        should_stop=lambda: len(reporter.epochs) >= 1,
    )
    assert result.status == "cancelled"
    assert watch.alive() == 0
