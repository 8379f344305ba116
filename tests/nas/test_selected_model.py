"""run_search (the serial engine) under the selection rule: the result and best_model.keras
name the chosen trial (real Keras, tiny budget)."""

from __future__ import annotations

import json
from pathlib import Path

from app.nas.artifacts import load_best_model
from app.nas.engine import run_search
from tests.nas.conftest import small_spec


def test_smallest_within_tolerance_serves_the_smallest_trial(tmp_path: Path) -> None:
    # A tolerance of 1.0 accuracy admits every trial: the choice is the smallest network,
    # whatever the (noisy) scores of one-epoch trials are.
    spec = small_spec(
        budget={"max_trials": 3},
        parameters={"strategy": "random", "epochs": 1, "seed": 5},
        selection={"rule": "smallest_within_tolerance", "tolerance": 1.0},
    )
    result = run_search(spec, artifacts_dir=tmp_path)
    done = [t for t in result.trials if t.status == "completed"]
    assert len(done) == 3 and len({t.params_count for t in done}) > 1
    smallest = min(done, key=lambda t: (t.params_count, -(t.score or 0.0), t.number))
    top = max(done, key=lambda t: (t.score or 0.0, -t.number))
    assert result.best is not None and result.best.number == smallest.number
    assert result.selection is not None
    assert (result.selection.trial, result.selection.top_trial) == (smallest.number, top.number)

    stored = json.loads((tmp_path / "result.json").read_text())
    assert stored["best"]["number"] == smallest.number
    assert stored["selection"]["rule"] == "smallest_within_tolerance"
    assert stored["selection"]["tolerance"] == 1.0
    assert json.loads((tmp_path / "architecture.json").read_text())["trial_number"] == (
        smallest.number
    )
    assert load_best_model(tmp_path).count_params() == smallest.params_count
    assert not (tmp_path / ".work").exists()  # the kept candidates went with the work dir


def test_best_is_the_default_rule(tmp_path: Path) -> None:
    result = run_search(
        small_spec(budget={"max_trials": 2}, parameters={"strategy": "random", "epochs": 1}),
        artifacts_dir=tmp_path,
    )
    done = [t for t in result.trials if t.status == "completed"]
    top = max(done, key=lambda t: (t.score or 0.0, -t.number))
    assert result.best is not None and result.best.number == top.number
    assert result.selection is not None and result.selection.rule == "best"
    assert result.selection.trial == result.selection.top_trial == top.number
    assert load_best_model(tmp_path).count_params() == top.params_count
