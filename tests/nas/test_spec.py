"""Spec validation: errors name the field, simple form, bounds, import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from app.nas.spec import NasSpec, SearchSpace


def locs(exc: ValidationError) -> list[tuple[object, ...]]:
    return [tuple(e["loc"]) for e in exc.errors()]


def test_defaults_infer_objective_direction_and_epochs() -> None:
    spec = NasSpec(dataset_id="digits", budget={"max_epochs": 3}, parameters={"epochs": 10})
    assert spec.objective == "val_accuracy"
    assert spec.direction == "max"
    assert spec.epochs_per_trial == 3
    reg = NasSpec(dataset_id="diabetes")
    assert reg.objective == "val_loss"
    assert reg.direction == "min"
    assert NasSpec(dataset_id="diabetes", parameters={"direction": "max"}).direction == "max"


def test_the_default_strategy_is_asha() -> None:
    """Issue 14: asha reached KerasTuner RandomSearch's 30-trial best on digits fastest
    (docs/benchmarks.md); a spec that names no strategy gets it."""
    assert NasSpec(dataset_id="digits").parameters.strategy == "asha"
    named = NasSpec(dataset_id="digits", parameters={"strategy": "random"})
    assert named.parameters.strategy == "random"


def test_simple_form_is_normalised() -> None:
    space = SearchSpace.model_validate(
        {
            "layers": [1, 2, 3],
            "neurons": [32, 64, 128],
            "activation": ["relu", "tanh"],
            "learning_rate": [0.001, 0.01],
        }
    )
    assert (space.minimum_levels, space.maximum_levels) == (2, 4)  # + the output level
    assert space.neuron_choices() == [32, 64, 128]
    assert (space.minimum_neurons_per_unit, space.maximum_neurons_per_unit) == (32, 128)
    assert space.learning_rate == [0.001, 0.01]


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"dataset_id": "nope"}, ("dataset_id",)),
        ({"dataset_id": "diabetes", "objective": "val_accuracy"}, ("objective",)),
        ({"dataset_id": "digits", "objective": "val_mae"}, ("objective",)),
        ({"dataset_id": "digits", "objective": "val_bogus"}, ("objective",)),
        ({"dataset_id": "digits", "objective": "DROP TABLE"}, ("objective",)),
        ({"dataset_id": "digits", "budget": {"max_trials": 501}}, ("budget", "max_trials")),
        ({"dataset_id": "digits", "budget": {"max_trials": 0}}, ("budget", "max_trials")),
        ({"dataset_id": "digits", "budget": {"max_seconds": 0}}, ("budget", "max_seconds")),
        ({"dataset_id": "digits", "budget": {"max_seconds": 1e9}}, ("budget", "max_seconds")),
        ({"dataset_id": "digits", "parameters": {"epochs": 501}}, ("parameters", "epochs")),
        (
            {"dataset_id": "digits", "parameters": {"validation_split": 0.9}},
            ("parameters", "validation_split"),
        ),
        ({"dataset_id": "digits", "parameters": {"strategy": "grid"}}, ("parameters", "strategy")),
        (
            {"dataset_id": "digits", "search_space": {"maximum_levels": 9}},
            ("search_space", "maximum_levels"),
        ),
        (
            {"dataset_id": "digits", "search_space": {"maximum_neurons_per_unit": 5000}},
            ("search_space", "maximum_neurons_per_unit"),
        ),
        (
            {"dataset_id": "digits", "search_space": {"minimum_levels": 4, "maximum_levels": 2}},
            ("search_space", "minimum_levels"),
        ),
        (
            {
                "dataset_id": "digits",
                "search_space": {"minimum_units_per_level": 5, "maximum_units_per_level": 2},
            },
            ("search_space", "minimum_units_per_level"),
        ),
        (
            {"dataset_id": "digits", "search_space": {"activation": ["relu", "evil"]}},
            ("search_space", "activation"),
        ),
        (
            {"dataset_id": "digits", "search_space": {"learning_rate": [-1.0]}},
            ("search_space", "learning_rate"),
        ),
        (
            {"dataset_id": "digits", "search_space": {"neurons": [4, 100000]}},
            ("search_space", "neurons_per_unit_choices"),
        ),
        (
            {"dataset_id": "classification", "dataset_options": {"n_samples": 10**6}},
            ("dataset_options", "n_samples"),
        ),
        (
            {"dataset_id": "classification", "dataset_options": {"n_features": 2, "n_classes": 9}},
            ("dataset_options", "n_classes"),
        ),
        ({"dataset_id": "digits", "dataset_options": {"colour": 1}}, ("dataset_options", "colour")),
        ({"dataset_id": "digits", "surprise": 1}, ("surprise",)),
        (
            {"dataset_id": "digits", "search_space": {"typo_levels": 1}},
            ("search_space", "typo_levels"),
        ),
    ],
)
def test_invalid_specs_name_the_field(data: dict[str, object], loc: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        NasSpec.model_validate(data)
    assert loc in locs(info.value)


def test_spec_round_trips_through_json() -> None:
    spec = NasSpec(dataset_id="wine", search_space={"layers": [0, 1], "neurons": [8]})
    again = NasSpec.model_validate_json(spec.model_dump_json())
    assert again == spec


def test_spec_and_package_import_without_keras_or_torch() -> None:
    code = (
        "import sys, app.nas, app.nas.spec, app.nas.records;"
        "bad = [m for m in ('keras', 'torch', 'sklearn') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("data", "stored"),
    [
        ({"dataset_id": "digits"}, None),
        # Options a real dataset ignores are not stored as if it had used them.
        ({"dataset_id": "iris", "dataset_options": {"n_classes": 5, "noise": 2.0}}, None),
        (
            {"dataset_id": "digits", "dataset_options": {"max_samples": 500, "n_features": 3}},
            {"max_samples": 500, "seed": 0},
        ),
        (
            {"dataset_id": "classification", "dataset_options": {"n_classes": 3}},
            {
                "n_samples": 1000,
                "n_features": 20,
                "n_classes": 3,
                "noise": 0.1,
                "seed": 0,
                "max_samples": None,
            },
        ),
        (
            {"dataset_id": "regression", "dataset_options": {"n_features": 4}},
            {"n_samples": 1000, "n_features": 4, "noise": 0.1, "seed": 0, "max_samples": None},
        ),
    ],
)
def test_dump_keeps_only_the_dataset_options_the_dataset_reads(
    data: dict[str, object], stored: dict[str, object] | None
) -> None:
    spec = NasSpec.model_validate(data)
    for dumped in (spec.model_dump(mode="json"), json.loads(spec.model_dump_json())):
        assert dumped.get("dataset_options") == stored
        again = NasSpec.model_validate(dumped)
        # What the dataset reads is unchanged by the round trip.
        for name in spec.dataset_options.used_by(spec.dataset_id):
            assert getattr(again.dataset_options, name) == getattr(spec.dataset_options, name)
