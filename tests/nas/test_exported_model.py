"""The saved best model carries its preprocessing: raw rows in, the service's answer out.

Each run is a real (tiny) search through the engine; the saved file is then loaded the way a
user loads the download, in a fresh process with Keras alone, and compared with the
service's predict path on the same raw rows.
"""

from __future__ import annotations

import importlib.util
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets

from app.nas.artifacts import (
    ARCHITECTURE,
    BEST_MODEL,
    PREPROCESSING,
    load_best_model,
    load_preprocessing,
    model_outputs,
    predict,
)
from app.nas.backend import keras
from app.nas.builder import build_model
from app.nas.datasets import Dataset, load_dataset
from app.nas.engine import SearchResult, run_search
from app.nas.preprocessing import FEATURES_LAYER, TARGET_LAYER
from app.nas.space import architectures, head_for
from app.nas.trainer import compile_candidate, fit_candidate
from tests.nas.conftest import small_spec
from tests.nas.fresh_keras import predict_in_fresh_process

pytestmark = pytest.mark.slow

SEARCH = {
    "search_space": {"maximum_levels": 2, "minimum_neurons_per_unit": 16},
    "parameters": {"epochs": 3, "batch_size": 64},
    "budget": {"max_trials": 2},
}


@dataclass
class Run:
    root: Path
    result: SearchResult
    data: Dataset

    @property
    def last_epoch(self) -> dict[str, float]:
        """Metrics of the saved model's own weights: the best trial's last epoch."""
        assert self.result.best is not None
        return self.result.best.history[-1]


def search(dataset_id: str, root: Path) -> Run:
    result = run_search(small_spec(dataset_id, **SEARCH), artifacts_dir=root)
    assert result.status == "completed" and result.best is not None
    return Run(root, result, load_dataset(dataset_id))


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return search("digits", tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return search("diabetes", tmp_path_factory.mktemp("diabetes"))


def raw_validation_rows(data: Dataset) -> np.ndarray:
    """The validation split as it was before standardisation."""
    rows: np.ndarray = data.x_val * data.x_std + data.x_mean
    return rows


def test_downloaded_digits_model_answers_raw_rows_like_predict(digits: Run, tmp_path: Path) -> None:
    rows, labels = sklearn.datasets.load_digits(return_X_y=True)  # every raw row, as shipped
    loaded = predict_in_fresh_process(digits.root / BEST_MODEL, rows, tmp_path)
    service = model_outputs(load_best_model(digits.root), rows)
    assert loaded.shape == (len(rows), 10)
    assert np.allclose(loaded, service, atol=1e-5)
    assert np.allclose(loaded.sum(axis=1), 1.0, atol=1e-4)  # class probabilities
    assert predict(digits.root, rows.tolist()) == loaded.argmax(axis=1).tolist()
    # Not merely the same answer, the right one: as accurate on raw rows as in training
    # (the bare network, fed raw rows, agreed with /predict on ~42 % of them).
    val = raw_validation_rows(digits.data)
    val_accuracy = float(
        np.mean(model_outputs(load_best_model(digits.root), val).argmax(1) == digits.data.y_val)
    )
    assert val_accuracy == pytest.approx(digits.last_epoch["val_accuracy"], abs=0.01)
    assert float(np.mean(loaded.argmax(axis=1) == labels)) >= val_accuracy - 0.05


def test_downloaded_regression_model_answers_in_target_units(diabetes: Run, tmp_path: Path) -> None:
    data = diabetes.data
    rows = raw_validation_rows(data)
    loaded = predict_in_fresh_process(diabetes.root / BEST_MODEL, rows, tmp_path)
    service = model_outputs(load_best_model(diabetes.root), rows)
    assert loaded.shape == (len(rows), 1)
    assert np.allclose(loaded, service, rtol=1e-5, atol=1e-3)
    assert np.allclose(predict(diabetes.root, rows.tolist()), loaded.reshape(-1), rtol=1e-5)
    # Target units: the error is the trained one (standard units) times the target's spread.
    targets = data.y_val * data.y_std + data.y_mean
    mae = float(np.mean(np.abs(loaded.reshape(-1) - targets)))
    assert mae == pytest.approx(diabetes.last_epoch["val_mae"] * data.y_std, rel=1e-3)


def classes_in(node: object) -> set[tuple[str, str, str]]:
    """(module, class_name, registered_name) of every object in a saved model's config."""
    found: set[tuple[str, str, str]] = set()
    if isinstance(node, dict):
        if "class_name" in node:
            found.add(
                (
                    str(node.get("module")),
                    str(node["class_name"]),
                    str(node.get("registered_name")),
                )
            )
        for value in node.values():
            found |= classes_in(value)
    elif isinstance(node, list):
        for item in node:
            found |= classes_in(item)
    return found


def test_saved_model_is_built_in_keras_layers_only(digits: Run, diabetes: Run) -> None:
    for run, layers in ((digits, [FEATURES_LAYER]), (diabetes, [FEATURES_LAYER, TARGET_LAYER])):
        with zipfile.ZipFile(run.root / BEST_MODEL) as archive:
            classes = classes_in(json.loads(archive.read("config.json")))
        for module, name, registered in classes:
            # A custom object is registered as "package>Name"; a backend's own class (the
            # torch Adam of a compiled model) cannot be loaded with another backend.
            assert ">" not in registered, (module, name)
            assert not module.startswith(("app", "keras.src.backend")), (module, name)
        model = keras.saving.load_model(run.root / BEST_MODEL)
        normalizations = [
            layer.name for layer in model.layers if isinstance(layer, keras.layers.Normalization)
        ]
        assert normalizations == layers
        assert model.input_shape == (None, run.data.input_dim)
        assert load_preprocessing(run.root).in_model


@pytest.mark.parametrize("backend", ["torch", "jax", "tensorflow"])
def test_saved_model_loads_with_any_installed_backend(
    digits: Run, backend: str, tmp_path: Path
) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    rows = raw_validation_rows(digits.data)
    loaded = predict_in_fresh_process(digits.root / BEST_MODEL, rows, tmp_path, backend)
    assert np.allclose(loaded, model_outputs(load_best_model(digits.root), rows), atol=1e-5)


def test_model_saved_before_models_carried_preprocessing_still_predicts(tmp_path: Path) -> None:
    """An old run's file is the bare network and preprocessing.json has no ``in_model``."""
    for dataset_id in ("iris", "diabetes"):
        root = tmp_path / dataset_id
        root.mkdir()
        data = load_dataset(dataset_id)
        spec = small_spec(dataset_id)
        head = head_for(data.task, data.n_classes, None)
        arch = next(architectures(spec.search_space, 0, input_dim=data.input_dim, head=head))
        model = build_model(arch, seed=0)
        compile_candidate(model, learning_rate=0.01, loss=arch.loss, task=data.task)
        fit_candidate(
            model, data, epochs=2, batch_size=32, objective=spec.resolved_objective, direction="min"
        )
        model.save(root / BEST_MODEL)
        legacy = data.preprocessing().to_dict()
        del legacy["in_model"]
        (root / PREPROCESSING).write_text(json.dumps(legacy))
        (root / ARCHITECTURE).write_text("{}")
        bare = np.asarray(model.predict(data.x_val, verbose=0))
        predicted = predict(root, raw_validation_rows(data).tolist())
        if data.task == "regression":
            expected = (bare.reshape(-1) * data.y_std + data.y_mean).tolist()
            assert np.allclose(predicted, expected, rtol=1e-4, atol=1e-3)
        else:
            assert predicted == bare.argmax(axis=1).tolist()
