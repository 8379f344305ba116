"""Datasets: built-ins, synthetic options, keras loader via a fake cache, unavailability."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from app.nas.datasets import DatasetUnavailable, clear_dataset_cache, load_dataset
from app.nas.spec import DatasetOptions

BUILTINS = {
    # name: (n_samples, n_features, task, n_classes)
    "digits": (1797, 64, "classification", 10),
    "iris": (150, 4, "classification", 3),
    "wine": (178, 13, "classification", 3),
    "breast_cancer": (569, 30, "classification", 2),
    "diabetes": (442, 10, "regression", 0),
}


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_shapes_task_and_split(name: str) -> None:
    n, features, task, classes = BUILTINS[name]
    data = load_dataset(name, validation_split=0.25, seed=1)
    assert data.task == task
    assert data.n_classes == classes
    assert data.input_dim == features
    assert len(data.x_train) + len(data.x_val) == n
    assert len(data.x_val) == pytest.approx(0.25 * n, abs=1)
    assert data.x_train.dtype == np.float32
    # Standardised with statistics of the training part only.
    assert np.allclose(data.x_train.mean(axis=0), 0, atol=1e-4)
    assert not np.allclose(data.x_val.mean(axis=0), 0, atol=1e-4)
    if task == "classification":
        assert set(np.unique(data.y_train)) == set(range(classes))
    else:
        assert abs(float(data.y_train.mean())) < 1e-4


def test_synthetic_datasets_follow_options() -> None:
    opts = DatasetOptions(n_samples=300, n_features=7, n_classes=4, noise=0.0, seed=3)
    data = load_dataset("classification", opts, validation_split=0.2)
    assert data.input_dim == 7
    assert data.n_classes == 4
    assert len(data.x_train) + len(data.x_val) == 300
    reg = load_dataset("regression", DatasetOptions(n_samples=100, n_features=3))
    assert reg.task == "regression"
    assert reg.input_dim == 3


def test_split_depends_on_seed_and_loads_are_cached() -> None:
    a = load_dataset("iris", seed=1)
    assert load_dataset("iris", seed=1) is a
    b = load_dataset("iris", seed=2)
    assert not np.array_equal(a.x_val, b.x_val)


def write_fake_mnist(cache: Path, n: int = 60) -> None:
    rng = np.random.default_rng(0)
    folder = cache / "datasets"
    folder.mkdir(parents=True)
    np.savez(
        folder / "mnist.npz",
        x_train=rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8),
        y_train=np.arange(n, dtype=np.uint8) % 10,
        x_test=rng.integers(0, 256, size=(10, 28, 28), dtype=np.uint8),
        y_test=np.arange(10, dtype=np.uint8),
    )


def test_keras_mnist_reads_the_cached_file(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path)
    data = load_dataset("mnist", cache_dir=tmp_path, validation_split=0.2)
    assert data.task == "classification"
    assert data.input_dim == 28 * 28  # images flattened
    assert data.n_classes == 10
    assert len(data.x_train) + len(data.x_val) == 60
    # The file is still there: nothing tried to replace it.
    assert (tmp_path / "datasets" / "mnist.npz").exists()
    clear_dataset_cache()


def test_max_samples_subsamples(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path, n=200)
    data = load_dataset("mnist", DatasetOptions(max_samples=50), cache_dir=tmp_path)
    assert len(data.x_train) + len(data.x_val) == 50


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_missing_keras_dataset_is_unavailable_quickly(tmp_path: Path, name: str) -> None:
    started = time.monotonic()
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset(name, cache_dir=tmp_path / "empty")
    assert time.monotonic() - started < 10
    assert "cannot be downloaded" in str(info.value)


def test_corrupt_cached_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "mnist.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetUnavailable, match=r"not a valid mnist\.npz"):
        load_dataset("mnist", cache_dir=tmp_path)
