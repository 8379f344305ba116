"""Several objectives in the spec, the new strategy parameters, and inference timing."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.nas.measure import measure_inference_ms
from app.nas.spec import NasSpec


def spec(**fields: Any) -> NasSpec:
    return NasSpec.model_validate({"dataset_id": "digits", **fields})


def test_objectives_with_inferred_directions() -> None:
    s = spec(objectives=[{"name": "val_accuracy"}, {"name": "params"}, {"name": "inference_ms"}])
    assert s.objective == "val_accuracy"  # the first metric ranks the run
    assert s.resolved_objectives == [
        ("val_accuracy", "maximize"),
        ("params", "minimize"),
        ("inference_ms", "minimize"),
    ]
    s = spec(
        objectives=[{"name": "params", "direction": "minimize"}, {"name": "val_loss"}],
        objective="val_accuracy",
    )
    assert s.objective == "val_accuracy"
    assert s.resolved_objectives == [("params", "minimize"), ("val_loss", "minimize")]
    explicit = spec(objectives=[{"name": "val_loss", "direction": "maximize"}])
    assert explicit.resolved_objectives == [("val_loss", "maximize")]


def test_without_objectives_the_one_objective() -> None:
    assert spec().resolved_objectives == [("val_accuracy", "maximize")]
    regression = NasSpec.model_validate({"dataset_id": "diabetes"})
    assert regression.resolved_objectives == [("val_loss", "minimize")]
    assert spec().objectives is None


@pytest.mark.parametrize(
    ("objectives", "where", "message"),
    [
        ([{"name": "params"}], ("objectives",), "Keras metric"),
        ([{"name": "val_accuracy"}, {"name": "val_accuracy"}], ("objectives",), "once"),
        ([{"name": "val_mae"}], ("objectives", 0, "name"), "does not fit"),
        ([{"name": "flops"}], ("objectives", 0, "name"), "unknown objective"),
        ([{"name": "val_accuracy", "direction": "up"}], ("objectives", 0, "direction"), ""),
        ([], ("objectives",), ""),
        ([{"name": "loss"}] * 5, ("objectives",), ""),
    ],
)
def test_bad_objectives_name_the_field(
    objectives: list[dict[str, str]], where: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        spec(objectives=objectives)
    error = info.value.errors()[0]
    assert error["loc"] == where
    assert message in error["msg"]


def test_uploaded_datasets_check_objectives_against_their_task() -> None:
    uploaded = NasSpec.model_validate(
        {"dataset_id": "ds_" + "0" * 32, "objectives": [{"name": "val_mae"}]}
    )
    assert uploaded.objective is None
    assert uploaded.for_task("regression").objective == "val_mae"
    with pytest.raises(ValidationError, match="does not fit"):
        uploaded.for_task("classification")


def test_strategy_parameters() -> None:
    for name in ("tpe", "evolution", "nsga2"):
        assert spec(parameters={"strategy": name}).parameters.strategy == name
    p = spec(parameters={"population_size": 8, "sample_size": 3}).parameters
    assert (p.population_size, p.sample_size) == (8, 3)
    defaults = spec().parameters
    assert (defaults.population_size, defaults.sample_size) == (20, 5)
    with pytest.raises(ValidationError):
        spec(parameters={"population_size": 1})
    with pytest.raises(ValidationError):
        spec(parameters={"strategy": "bayesian"})


class FakeModel:
    """Stands for a keras model: each prediction "takes" the next of ``delays`` ms."""

    def __init__(self, delays: list[float], clock: list[float]) -> None:
        self.delays = delays
        self.clock = clock
        self.batches: list[object] = []

    def predict_on_batch(self, x: object) -> None:
        self.batches.append(x)
        self.clock[0] += self.delays.pop(0) / 1000.0


def test_inference_ms_is_the_median_after_a_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    model = FakeModel([500.0, 3.0, 1.0, 2.0, 90.0, 2.0], clock)
    batch = object()
    assert measure_inference_ms(model, batch, repeats=5) == pytest.approx(2.0)
    assert model.batches == [batch] * 6  # the warm-up (500 ms, a trace) is not counted
    with pytest.raises(ValueError):
        measure_inference_ms(model, batch, repeats=0)
